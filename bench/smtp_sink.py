"""A local SMTP sink for the email benchmark: accepts everything on 127.0.0.1, keeps nothing.

    .venv/bin/python bench/smtp_sink.py --port 2525 --log /tmp/sink.log

Appends one line per accepted message to --log: "<monotonic seconds> <Message-ID>", so the
orchestrator can count messages, duplicates (a Message-ID seen twice) and the last acceptance.
"""

import argparse
import email
import email.policy
import time

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, log_path: str):
        self.log = open(log_path, "a", buffering=1)  # noqa: SIM115 (open for the process' life)

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.compat32)
        message_id = (message.get("Message-ID") or "-").strip()
        self.log.write(f"{time.time():.6f} {message_id}\n")
        return "250 OK"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    controller = Controller(Handler(args.log), hostname="127.0.0.1", port=args.port)
    controller.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()

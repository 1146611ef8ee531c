"""Letters per second: one WeasyPrint document per letter vs the release path, in the same run.

    .venv/bin/python bench/letters.py --count 200
    .venv/bin/python bench/letters.py --count 1000 --single-count 200 --processes 2
    .venv/bin/python bench/letters.py --count 1000 --single-count 200 --parallel-count 10000

Measures what release_process spends its time on: rendering the letters and writing each PDF
atomically to a folder with its SHA-256, as pledges.letters_pipeline does. The database rows (one
INSERT per letter) are not included: they cost well under a millisecond each next to the
rendering. No database is needed.

The letters are a release's: the demo letter text, one department (Nord, whose physicians choose
among four caisses), synthetic signers whose names and practice addresses vary in length as real
ones do (one in nine with a long address, one in seven with a long name), so that their blocks do
not all take the same height and some letters are placed a second time (pledges.letters_batch).

Both ways use the same templates, stylesheet, fonts and PDF options (deconv.pdf.PDF_OPTIONS) and
give the same letter (tests/letters/test_stamping.py compares them rendered at 150 dpi):
- single: letters_render_each, each letter laid out whole in a document of its own;
- batched: letters_render_batch on batches of --batch-size, sharing one LetterFrames as the
  batches of a worker do: each frame (letter text, caisse, block heights) laid out once, the
  signer blocks of a batch laid out in one document and stamped onto their frames.

Prints one JSON line (and appends it to --output when given):
- single_letters_per_s: one document per letter, 1 process;
- batched_letters_per_s: the release path, 1 process;
- parallel_letters_per_s: --parallel-count letters (default --count) in the same batches, shared
  by a pool of --processes processes, as release_process shares a release between workers;
- ratio: batched / single (wall clock); cpu_ratio: the same from the CPU time per letter, which
  other work on the machine disturbs less;
- frames, measured, placed_again, whole: frames laid out, letters laid out whole to measure their
  blocks (the first of each letter text per process), letters placed a second time (their
  blocks' heights were not the likely ones), letters laid out whole as a fallback (never, unless
  something is wrong), over the batched run;
- seconds_for_10000: 10,000 letters at the parallel rate; seconds_for_10000_basis says whether
  10,000 letters were actually rendered ("measured") or the rate of fewer was extrapolated;
- seconds_for_10000_idle_cores: 10,000 at the batched CPU cost per letter spread over --processes
  cores that nothing else uses (an estimate, always).
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deconv.settings")

import django  # noqa: E402

django.setup()

from deconv.pdf import PDF_OPTIONS  # noqa: E402
from pledges import letter_text  # noqa: E402
from pledges.demo import DEMO_LETTER_BODY, DEMO_LETTER_TITLE  # noqa: E402
from pledges.letter_frames import LetterFrames  # noqa: E402
from pledges.letters_batch import letters_render_batch, letters_render_each  # noqa: E402
from pledges.models import LetterVersion, Pledge  # noqa: E402
from pledges.rpps import luhn_check_digit  # noqa: E402
from territories.models import Caisse, Department  # noqa: E402

FIRST_NAMES = ["Élise", "Jean", "Anne-Sophie", "Mohamed", "Camille", "François", "Léa", "Hervé"]
LAST_NAMES = ["Martin", "Bernard", "Dubois-Lefèvre", "N'Diaye", "Nguyen", "Moreau", "Lefebvre"]
LONG_LAST_NAME = "de La Tour d'Auvergne-Lauraguais"
LONG_ADDRESS = (
    "Maison de santé pluriprofessionnelle des Trois Rivières, bâtiment B, 14 boulevard de la Liberté"
)
TODAY = date(2026, 3, 2)
# Nord: one department, four caisses (DOMAIN.md section 2), as in the largest releases.
CAISSES = ("CPAM de Lille-Douai", "CPAM de Roubaix-Tourcoing", "CPAM du Hainaut", "CPAM des Flandres")


def synthetic_pledges(count: int) -> list[Pledge]:
    """Unsaved pledges of one release with everything a letter prints; no query is made."""
    version = LetterVersion(number=1, title=DEMO_LETTER_TITLE, body=DEMO_LETTER_BODY)
    version.legal_basis = letter_text.DEFAULT_LEGAL_BASIS
    version.content_sha256 = version.compute_content_sha256()
    department = Department(code="59", name="Nord")
    caisses = [
        Caisse(
            department=department,
            code=f"59{number}",
            kind="cpam",
            name=name,
            address_line1=f"{number + 2} rue Gustave Delory",
            postal_code="59000",
            city="Lille",
        )
        for number, name in enumerate(CAISSES)
    ]
    pledges = []
    for serial in range(count):
        body = f"109{serial:07d}"
        last_name = LONG_LAST_NAME if serial % 7 == 3 else LAST_NAMES[serial % len(LAST_NAMES)]
        pledges.append(
            Pledge(
                pk=serial + 1,
                letter_version=version,
                department=department,
                caisse=caisses[serial % len(caisses)],
                rpps=body + luhn_check_digit(body),
                first_name=FIRST_NAMES[serial % len(FIRST_NAMES)],
                last_name=f"{last_name}-{serial}",
                specialty="general_practice",
                practice_mode="liberal",
                sector="1",
                practice_address=LONG_ADDRESS
                if serial % 9 == 4
                else f"{serial % 200 + 1} avenue de la République",
                postal_code=f"59{serial % 900 + 100}",
                city=("Lille", "Roubaix", "Tourcoing", "Valenciennes", "Dunkerque")[serial % 5],
            )
        )
    return pledges


def _store(rendered, folder: Path) -> None:
    """What the pipeline does with each PDF: hash it, write a temp file, rename it into place."""
    for letter in rendered:
        hashlib.sha256(letter.pdf).hexdigest()
        final = folder / f"{letter.pledge_id}.pdf"
        temp = folder / f".{letter.pledge_id}.tmp"
        temp.write_bytes(letter.pdf)
        os.replace(temp, final)


# The frames of this process, shared by its batches as a worker's batches share them.
_frames = LetterFrames()


def _render_and_store(args) -> tuple[int, float, dict]:
    """Render and store a chunk; returns (letters, CPU seconds this process spent on them, counts)."""
    pledges, folder, batched = args
    started = time.process_time()
    before = dict(_frames.counts)
    if batched:
        rendered = letters_render_batch(pledges=pledges, today=TODAY, frames=_frames)
    else:
        rendered = letters_render_each(pledges=pledges, today=TODAY)
    _store(rendered, Path(folder))
    counts = {key: _frames.counts[key] - before.get(key, 0) for key in _frames.counts}
    return len(pledges), time.process_time() - started, counts


def _chunks(items: list, size: int) -> list[list]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds else 0.0


def _ms_per_letter(seconds: float, count: int) -> float:
    return round(seconds * 1000 / count, 1) if count else 0.0


def run(*, count: int, single_count: int, batch_size: int, processes: int, parallel_count: int) -> dict:
    global _frames
    pledges = synthetic_pledges(max(count, parallel_count))
    # Warm up (imports, the first font load) so that neither way pays it in the figures; the
    # measured runs start with no frame laid out, as a worker starting a release does.
    letters_render_each(pledges=pledges[:1], today=TODAY)
    letters_render_batch(pledges=pledges[:2], today=TODAY, frames=LetterFrames())
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        _done, single_cpu, _counts = _render_and_store((pledges[:single_count], folder, False))
        single_seconds = time.perf_counter() - started

        started = time.perf_counter()
        batched_cpu = 0.0
        counts = {}
        for chunk in _chunks(pledges[:count], batch_size):
            _done, cpu, chunk_counts = _render_and_store((chunk, folder, True))
            batched_cpu += cpu
            counts = {key: counts.get(key, 0) + value for key, value in chunk_counts.items()}
        batched_seconds = time.perf_counter() - started

        # fork: the children inherit the set-up Django and the unsaved objects, and no frame.
        _frames = LetterFrames()
        context = multiprocessing.get_context("fork")
        with context.Pool(processes) as pool:
            pool.map(_render_and_store, [(pledges[:1], folder, False)] * processes)  # warm each process
            started = time.perf_counter()
            chunks = _chunks(pledges[:parallel_count], batch_size)
            results = list(pool.imap_unordered(_render_and_store, [(c, folder, True) for c in chunks]))
            parallel_seconds = time.perf_counter() - started
        sizes = [path.stat().st_size for path in Path(folder).glob("*.pdf")]
    assert sum(done for done, _cpu, _counts in results) == parallel_count
    single_rate = _rate(single_count, single_seconds)
    batched_rate = _rate(count, batched_seconds)
    parallel_rate = _rate(parallel_count, parallel_seconds)
    single_cpu_ms = _ms_per_letter(single_cpu, single_count)
    batched_cpu_ms = _ms_per_letter(batched_cpu, count)
    return {
        "bench": "letters",
        "count": count,
        "single_count": single_count,
        "parallel_count": parallel_count,
        "batch_size": batch_size,
        "processes": processes,
        "cpus": os.cpu_count(),
        # Other work on the machine slows the wall-clock figures; the CPU ones are steadier.
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "pdf_options": PDF_OPTIONS,
        "single_seconds": round(single_seconds, 2),
        "batched_seconds": round(batched_seconds, 2),
        "parallel_seconds": round(parallel_seconds, 2),
        "single_letters_per_s": single_rate,
        "batched_letters_per_s": batched_rate,
        "parallel_letters_per_s": parallel_rate,
        "ratio": round(batched_rate / single_rate, 2) if single_rate else None,
        "single_cpu_ms_per_letter": single_cpu_ms,
        "batched_cpu_ms_per_letter": batched_cpu_ms,
        "cpu_ratio": round(single_cpu_ms / batched_cpu_ms, 2) if batched_cpu_ms else None,
        "parallel_cpu_ms_per_letter": _ms_per_letter(
            sum(cpu for _done, cpu, _counts in results), parallel_count
        ),
        **counts,
        "seconds_for_10000": round(10_000 / parallel_rate, 1) if parallel_rate else None,
        "seconds_for_10000_basis": (
            "measured" if parallel_count == 10_000 else f"extrapolated from {parallel_count} letters"
        ),
        # What 10,000 letters cost on `processes` idle cores at the measured CPU cost per letter.
        "seconds_for_10000_idle_cores": round(10_000 * batched_cpu_ms / 1000 / processes, 1),
        "mean_pdf_bytes": round(sum(sizes) / len(sizes)) if sizes else 0,
        "max_pdf_bytes": max(sizes, default=0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="letters to render batched")
    parser.add_argument(
        "--single-count",
        type=int,
        default=None,
        help="letters to render one per document (default: --count, at most 200)",
    )
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--processes", type=int, default=2, help="pool size for the parallel run")
    parser.add_argument(
        "--parallel-count",
        type=int,
        default=None,
        help="letters to render in the parallel run (default: --count; 10000 measures seconds_for_10000)",
    )
    parser.add_argument("--output", type=Path, help="append the JSON line to this file too")
    args = parser.parse_args()
    single_count = args.single_count if args.single_count is not None else min(args.count, 200)
    result = run(
        count=args.count,
        single_count=single_count,
        batch_size=args.batch_size,
        processes=args.processes,
        parallel_count=args.parallel_count if args.parallel_count is not None else args.count,
    )
    line = json.dumps(result, sort_keys=True)
    print(line)
    if args.output:
        with args.output.open("a") as output:
            output.write(line + "\n")


if __name__ == "__main__":
    main()

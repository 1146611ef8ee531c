from tests.security.urls import params_for, routes
from tests.security.world import ROLES

def test_explore(world, clients):
    for route in routes():
        if route.route.startswith("admin/") and route.route not in ("admin/", "admin/pledges/pledge/"):
            continue
        url = route.url(params_for(route, world))
        row = []
        for role in ROLES:
            r = clients[role].get(url)
            loc = r.get("Location", "")
            row.append(f"{r.status_code}{'>' + loc[:25] if loc else ''}")
        print("ROW", route.route, "|", " ".join(row))

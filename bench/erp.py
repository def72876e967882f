"""Benchmark: "which invoices are overdue?" over 10,000 invoices in a real trytond.

A trytond database (SQLite) is built with the seeded company of the tests plus N more
posted invoices (default 10,000; payables and receivables of the seeded parties, invoice
dates spread over 150 days, net 30), then served by the ``trytond`` script. The question
is answered two ways, alternating, through the same JSON-RPC client:

- filtered: ``TrytonERPConnector.list_invoices(InvoiceQuery(overdue_on=today))``: the
  server filters (posted, an unreconciled line to pay maturing before today) and returns
  only the overdue invoices, in one request;
- fetch-all: every invoice read with the same fields, page by page (500 per page, the
  way a client without server-side filters pages), and filtered locally with
  ``Invoice.is_overdue``.

Both must return the same invoices. Printed per way: answer time (median of the runs),
HTTP requests and bytes received; then ratios. Asked twice: "overdue today" (no invoice
of the data set is paid, so about 80% of them are overdue: the least selective case) and
"more than 90 days overdue" (``overdue_on`` = today - 90 days, about a fifth), to show how
the gain grows with selectivity. The last line is the "overdue today" question. The
database is cached in ``--dir`` (built once: about 35 minutes for 10,000 invoices on two
cores, most of it trytond posting them).

    python -m bench.erp [--invoices 10000] [--runs 5] [--dir /tmp/assistant-bench-erp]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from integrations.base import InvoiceQuery  # noqa: E402
from integrations.tryton import TrytonClient, TrytonConfig, TrytonERPConnector  # noqa: E402
from integrations.tryton.erp import _INVOICE_FIELDS  # noqa: E402
from tests.fixtures.tryton import build_database, run_server  # noqa: E402

PAGE = 500


class _Counter(httpx.AsyncBaseTransport):
    """Counts requests and response bytes of the connector's HTTP client."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.requests = 0
        self.bytes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        body = await response.aread()
        self.requests += 1
        self.bytes += len(body)
        # The body is decoded already: drop the headers that described the wire form.
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def ensure_database(folder: Path, invoices: int) -> Path:
    seed = folder / "seed.json"
    if seed.exists() and json.loads(seed.read_text()).get("extra_invoices") == invoices:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    print(f"building a trytond database with {invoices} extra invoices in {folder} ...", flush=True)
    seconds = build_database(folder, extra_invoices=invoices, timeout=3600)
    print(f"built in {seconds:.0f} s", flush=True)
    return folder


async def _filtered(connector: TrytonERPConnector, on: date) -> list[str]:
    found = await connector.list_invoices(InvoiceQuery(overdue_on=on, limit=10_000))
    return sorted(i.id for i in found)


async def _fetch_all(connector: TrytonERPConnector, on: date) -> list[str]:
    overdue: list[str] = []
    offset = 0
    while True:
        rows = await connector.client.search_read(
            "account.invoice", [], _INVOICE_FIELDS, offset=offset, limit=PAGE, order=[["id", "ASC"]]
        )
        for row in rows:
            invoice = connector._invoice(row)
            if invoice.is_overdue(on):
                overdue.append(invoice.id)
        if len(rows) < PAGE:
            return sorted(overdue)
        offset += PAGE


async def measure(
    url: str, database: str, login: str, password: str, runs: int, on: date
) -> dict[str, Any]:
    counter = _Counter()
    http = httpx.AsyncClient(transport=counter, timeout=300)
    config = TrytonConfig(url=url, database=database, login=login, password=password, timeout_s=300)
    client = TrytonClient(
        url, database, login, password, http_client=http, connector="bench", timeout_s=300
    )
    connector = TrytonERPConnector(client, config, name="bench")
    await client.login()
    total = await connector.client.search_count("account.invoice", [])
    results: dict[str, dict[str, list[float]]] = {
        "filtered": {"seconds": [], "requests": [], "bytes": []},
        "fetch_all": {"seconds": [], "requests": [], "bytes": []},
    }
    answers: dict[str, list[str]] = {}
    ways = {"filtered": _filtered, "fetch_all": _fetch_all}
    for _ in range(runs):
        for name, way in ways.items():
            before_requests, before_bytes = counter.requests, counter.bytes
            started = time.perf_counter()
            answers[name] = await way(connector, on)
            results[name]["seconds"].append(time.perf_counter() - started)
            results[name]["requests"].append(counter.requests - before_requests)
            results[name]["bytes"].append(counter.bytes - before_bytes)
    await http.aclose()
    if answers["filtered"] != answers["fetch_all"]:
        raise SystemExit(
            f"the two ways disagree: {len(answers['filtered'])} vs "
            f"{len(answers['fetch_all'])} overdue invoices"
        )
    summary = {
        name: {
            "seconds": statistics.median(r["seconds"]),
            "requests": int(statistics.median(r["requests"])),
            "bytes": int(statistics.median(r["bytes"])),
        }
        for name, r in results.items()
    }
    return {"invoices": total, "overdue": len(answers["filtered"]), **summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "assistant-bench-erp"
    )
    args = parser.parse_args(argv)
    folder = ensure_database(args.dir.resolve(), args.invoices)
    today = date.today()
    questions = {
        "more than 90 days overdue": today - timedelta(days=90),
        "overdue today": today,
    }
    reports: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as serve_dir, run_server(folder, Path(serve_dir)) as server:
        for question, on in questions.items():
            reports[question] = asyncio.run(
                measure(server.url, server.database, server.login, server.password, args.runs, on)
            )
    for question, report in reports.items():
        f, a = report["filtered"], report["fetch_all"]
        print(
            f"trytond, {question}: {report['overdue']} of {report['invoices']} invoices "
            f"(median of {args.runs} runs)"
        )
        print(
            f"  filtered on the server: {f['seconds'] * 1000:8.1f} ms  {f['requests']:4d} "
            f"request(s)  {f['bytes'] / 1024:9.1f} KiB"
        )
        print(
            f"  fetch all, filter here: {a['seconds'] * 1000:8.1f} ms  {a['requests']:4d} "
            f"request(s)  {a['bytes'] / 1024:9.1f} KiB"
        )
        print(
            f"  speedup {a['seconds'] / f['seconds']:.1f}x, requests {f['requests']}:"
            f"{a['requests']}, bytes {a['bytes'] / max(f['bytes'], 1):.1f}x"
        )
    f, a = reports["overdue today"]["filtered"], reports["overdue today"]["fetch_all"]
    print(
        f"erp overdue speedup={a['seconds'] / f['seconds']:.1f}x "
        f"requests={f['requests']}:{a['requests']} "
        f"bytes_ratio={a['bytes'] / max(f['bytes'], 1):.1f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

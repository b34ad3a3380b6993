"""Pass/fail against the targets, the printed table, and the JSON file."""

import json
from pathlib import Path

from bench import pages as targets

PASS, FAIL, NONE = "pass", "FAIL", "-"


def check_page(result: dict, is_list: bool) -> dict:
    fragment = result.get("fragment")
    load = result.get("load")
    return {
        "p95": _at_most(result["p95_ms"], targets.P95_MS),
        "sql": _at_most(
            max(result["sql_queries"], (fragment or {}).get("sql_queries") or 0),
            targets.SQL_QUERIES,
        ),
        "page_size": _at_most(result["bytes"], targets.LIST_PAGE_BYTES) if is_list else None,
        "fragment_size": _at_most(fragment["bytes"], targets.FRAGMENT_BYTES) if fragment else None,
        "requests_per_second": (
            load["requests_per_second"] >= targets.REQUESTS_PER_SECOND if load else None
        ),
    }


def check_write(result: dict) -> dict:
    return {
        "p95": _at_most(result["p95_ms"], targets.P95_MS),
        "sql": _at_most(result["sql_queries"], targets.SQL_QUERIES),
    }


def _at_most(value, limit) -> bool | None:
    return None if value is None else value <= limit


def _mark(check: bool | None) -> str:
    return NONE if check is None else (PASS if check else FAIL)


def _num(value, digits: int = 1) -> str:
    return NONE if value is None else f"{value:,.{digits}f}"


def _kb(size) -> str:
    return NONE if size is None else f"{size / 1024:.1f}"


HEADER = (
    f"{'page':<24} {'role':<10} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'req/s':>7} {'SQL':>4} "
    f"{'KB':>6} {'frag KB':>7} | {'p95':<4} {'SQL':<4} {'size':<4} {'frag':<4} {'req/s':<5}"
)


def table(results: dict) -> str:
    lines = [HEADER, "-" * len(HEADER)]
    for page in results["pages"]:
        checks, load, fragment = page["checks"], page.get("load"), page.get("fragment")
        sql = (
            page["sql_queries"]
            if not fragment
            else max(page["sql_queries"], fragment["sql_queries"])
        )
        lines.append(
            f"{page['name']:<24.24} {page['role']:<10} {_num(page['p50_ms']):>7} "
            f"{_num(page['p95_ms']):>7} {_num(page['p99_ms']):>7} "
            f"{_num(load['requests_per_second'], 0) if load else NONE:>7} {sql:>4} "
            f"{_kb(page['bytes']):>6} {_kb(fragment['bytes']) if fragment else NONE:>7} | "
            f"{_mark(checks['p95']):<4} {_mark(checks['sql']):<4} {_mark(checks['page_size']):<4} "
            f"{_mark(checks['fragment_size']):<4} {_mark(checks['requests_per_second']):<5}"
        )
    for write in results["writes"]:
        checks = write["checks"]
        lines.append(
            f"{'write: ' + write['name']:<24.24} {write['role']:<10} {_num(write['p50_ms']):>7} "
            f"{_num(write['p95_ms']):>7} {_num(write['p99_ms']):>7} {NONE:>7} "
            f"{write['sql_queries']:>4} {_kb(write['bytes']):>6} {NONE:>7} | "
            f"{_mark(checks['p95']):<4} {_mark(checks['sql']):<4} {NONE:<4} {NONE:<4} {NONE:<5}"
        )
    lines.append("")
    for page in results["pages"]:
        load = page.get("load")
        if load:
            lines.append(
                f"load, {page['name']}: {load['requests_per_second']:,.0f} req/s with {load['tool']}, "
                f"{load['connections']} connections, {load['seconds']:.0f} s, "
                f"{load['requests']:,} requests, p50 {_num(load['p50_ms'])} ms, "
                f"p99 {_num(load['p99_ms'])} ms, {load['errors']} errors"
            )
    memory = results["memory"]
    for label, key in (("web worker", "web_workers"), ("rq worker", "rq_worker")):
        entries = memory.get(key) or []
        entries = entries if isinstance(entries, list) else [entries]
        sizes = ", ".join(
            f"{e['rss_bytes'] / 2**20:.0f} MB (peak {e['peak_rss_bytes'] / 2**20:.0f} MB)"
            for e in entries
            if e.get("rss_bytes")
        )
        check = memory["checks"].get(key)
        lines.append(f"memory, {label}: {sizes or 'not measured'}  [{_mark(check)} ≤ 150 MB]")
    machine = results["machine"]
    lines.append(
        f"machine: {machine['cpus']} cores ({machine['cpu_model']}), "
        f"{machine['memory_bytes'] / 2**30:.1f} GiB; load average {machine['load_average_start']} "
        f"before, {machine['load_average_end']} after"
    )
    return "\n".join(lines)


def memory_checks(memory: dict) -> dict:
    workers = memory.get("web_workers") or []
    web = [w["rss_bytes"] for w in workers if w.get("rss_bytes")]
    rq = (memory.get("rq_worker") or {}).get("rss_bytes")
    return {
        "web_workers": (max(web) <= targets.RSS_BYTES) if web else None,
        "rq_worker": (rq <= targets.RSS_BYTES) if rq else None,
    }


def failed_targets(results: dict) -> list[str]:
    missed = []
    for entry in results["pages"] + results["writes"]:
        for name, ok in entry["checks"].items():
            if ok is False:
                missed.append(f"{entry['name']} ({entry['role']}): {name}")
    for name, ok in results["memory"]["checks"].items():
        if ok is False:
            missed.append(f"memory: {name}")
    return missed


def write_json(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")

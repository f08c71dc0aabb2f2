"""`cachegate loadtest`: cache off versus on through the same proxy processes, swept with wrk, performance.md.

Order of a run: stack (used or started) -> seed -> tokens -> references (bare aiohttp handler, users backend
called directly) -> cache off (admin toggle) sweep -> cache on (new epoch) -> warm every seeded id -> profile
(py-spy, full runs) -> sweep -> variants (zipf, basic, mixed) -> the invalidator under SQL writes
(loadtest/invalidation.py). Every step has a progress bar on stderr. Any socket error or non-2xx anywhere
marks the run INVALID in the report and the exit code is 1.
"""
from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cachegate.config import load_config
from cachegate.errors import ConfigError
from loadtest import cluster, credentials, invalidation, procstat, steps, wrk
from loadtest.measure import Measurer, PointSpec
from loadtest.plan import FIXED_CONNECTIONS, Plan, parser, resolve
from loadtest.progress import Bar, say
from loadtest.target import Stack, TargetError, close_stack, open_stack

EXIT_VALID, EXIT_INVALID, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    try:
        config = load_config(Path(args.config) if args.config else None)
        section = args.section or ("cluster" if config.mariadb.cluster else "main")
        plan, results_dir, report_path = resolve(args, section)
        wrk_version = wrk.version()
    except (ConfigError, wrk.WrkError, ValueError) as exc:
        say(f"cachegate loadtest: {exc}")
        return EXIT_USAGE
    run: dict[str, Any] = {
        "section": section, "database": cluster.database_record(config),
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "quick": args.quick,
        "command": shlex.join(["cachegate", "loadtest", *argv]), "plan": asdict(plan),
        "ab_only": args.ab_only,
        "status_count": args.status_count, "machine": procstat.machine(),
        "software": procstat.software(wrk_version),
        "config": _config_record(config), "report": str(report_path), "results_dir": str(results_dir)}
    _clear(results_dir)
    started = time.monotonic()
    try:
        measurer = _execute(run, config, plan, results_dir, args)
    except (TargetError, credentials.CredentialsError, wrk.WrkError, OSError) as exc:
        say(f"cachegate loadtest: FAILED: {exc}")
        return EXIT_FAILED
    run["points"], run["problems"], run["commands"] = measurer.points, measurer.problems, measurer.commands
    run["valid"] = not measurer.problems
    run["elapsed_s"] = time.monotonic() - started
    _write(run, results_dir, report_path, args.beside)
    say(f"report: {report_path}\nresults: {results_dir / 'results.json'}")
    if not run["valid"]:
        say("INVALID run:\n  " + "\n  ".join(measurer.problems))
        return EXIT_INVALID
    return EXIT_VALID


def _execute(run: dict[str, Any], config: Any, plan: Plan, results_dir: Path, args: Any) -> Measurer:
    stack = open_stack(config, say)
    secrets_dir = Path(tempfile.mkdtemp(prefix="cachegate-loadtest-"))
    pinned: dict[int, set[int]] = {}
    cache_was: bool | None = None
    try:
        ids, known, files = _credentials(run, config, plan, stack, secrets_dir)
        probe = (known[0].id, f"Bearer {known[0].token}")
        count = {"count": "1"} if args.status_count == "lua" else {}
        bearer = {"ids": str(files.ids), "creds": str(files.bearer), **count}
        basic = {"ids": str(files.ids), "creds": str(files.basic), **count}

        cpus = sorted(os.sched_getaffinity(0))
        pin = args.pin and len(cpus) >= 2
        wrk_cpu = cpus[0] if pin else None
        server_cpus = set(cpus[1:]) if pin else set(cpus)
        run["pinning"] = {"enabled": pin, "wrk_cpus": [wrk_cpu] if pin else cpus,
                          "server_cpus": sorted(server_cpus),
                          "pinned": "wrk and the proxy (or the reference server)" if pin else "nothing"}
        proxy_pids = stack.pids()["proxy"]
        run["proxy_pids"] = {"before": proxy_pids}
        if pin:
            pinned = procstat.pin(proxy_pids, server_cpus)

        measurer = Measurer(results_dir, plan.warmup_s, plan.duration_s, wrk_cpu, stack.pids,
                            stack.proxy_url + "/-/metrics", stack.route)
        if args.ab_only:
            run["ab"] = _ab(args, plan, config, bearer, measurer, secrets_dir, server_cpus if pin else None)
            return measurer
        if run["section"] == "main":  # the references are the machine's, not the database's: measured once
            steps.references(measurer, plan, run, secrets_dir, stack, bearer, server_cpus if pin else None)

        cache_was = stack.cache_enabled()
        run["cache_toggles"] = [{"enabled": False, "cache_status": stack.set_cache(False, probe)}]
        all_procs = ("proxy", "users", "mariadb", "redis")
        for conns in plan.sweep:
            measurer.measure(PointSpec("cache-off", stack.proxy_url, "get_uniform", conns, bearer, all_procs))

        run["cache_toggles"].append({"enabled": True, "cache_status": stack.set_cache(True, probe)})
        # The fill is bound by the miss path (proxy, backend, MariaDB): let the scheduler use every core.
        procstat.unpin(pinned)
        run["warm"] = steps.warm(measurer, stack, plan, ids, bearer)
        if pin:
            pinned = procstat.pin(proxy_pids, server_cpus)
        from loadtest import profile

        # Right after the fill, before any entry can expire: the profile sees the hit path and nothing else.
        auto = args.profile == "auto" and not args.quick and run["section"] == "main" and profile.py_spy()
        if args.profile == "yes" or auto:
            run["profile"] = profile.record(measurer, stack, bearer, all_procs, results_dir)
        for conns in plan.sweep:
            measurer.measure(PointSpec("cache-on", stack.proxy_url, "get_uniform", conns, bearer, all_procs))
        scripts = {"zipf": ("get_zipf", bearer), "basic": ("get_basic", basic), "mixed": ("mixed", bearer)}
        for variant in plan.variants:
            script, script_args = scripts[variant]
            measurer.measure(PointSpec(variant, stack.proxy_url, script, FIXED_CONNECTIONS, script_args,
                                       all_procs))
        # Last of the stack's own measures: its SQL writes must not touch the read points above.
        run["invalidation"] = invalidation.measure(config, ids, seconds=2 if args.quick else 10,
                                                   rate=200 if args.quick else 1000, say=say)
        found = run["invalidation"]
        if found.get("errors") or found.get("timeouts"):
            measurer.problems.append(f"invalidation: {found.get('timeouts', 0)} change(s) not applied within "
                                     f"10 s; {'; '.join(found.get('errors') or []) or 'no error'}")
        if run["section"] == "cluster":
            run["sync_wait"] = cluster.sync_wait_cost(config, ids)
        if args.vs:
            procstat.unpin(pinned)
            pinned = {}
            run["ab"] = _ab(args, plan, config, bearer, measurer, secrets_dir, server_cpus if pin else None)
        run["proxy_pids"]["after"] = stack.pids()["proxy"]
        if sorted(run["proxy_pids"]["after"]) != sorted(proxy_pids):
            measurer.problems.append("the proxy processes changed during the run (restart or crashed worker)")
        return measurer
    finally:
        procstat.unpin(pinned)
        if cache_was is not None and probe_alive(stack):
            try:
                stack.admin("POST", "/-/admin/cache", {"enabled": cache_was})
            except TargetError as exc:
                say(f"could not restore the cache switch: {exc}")
        shutil.rmtree(secrets_dir, ignore_errors=True)
        if not args.keep_stack:
            close_stack(stack, say)


def _ab(args: Any, plan: Plan, config: Any, bearer: dict[str, str], measurer: Measurer, scratch: Path,
        server_cpus: set[int] | None) -> dict[str, Any]:
    """This tree (B) against the anchor (A), in turn; see loadtest/ab.py."""
    from loadtest import ab
    rounds = args.vs_rounds or (2 if args.quick else 4)
    seconds = plan.duration_s if args.quick else max(plan.duration_s, 8)
    record = ab.run_ab(anchor=ab.parse_side(args.vs, "A"), measured=ab.SideSpec("B", None, None, ab.parse_env(args.vs_env)),
                       stack_config=config, bearer=bearer, measurer=measurer, rounds=rounds, seconds=seconds,
                       warm_s=max(plan.warmup_s, 2 if args.quick else 6), scratch=scratch / "ab",
                       server_cpus=server_cpus, say=say)
    record["anchor"], record["target"] = args.vs, args.vs_target
    return record


def _credentials(run: dict[str, Any], config: Any, plan: Plan, stack: Stack,
                 folder: Path) -> tuple[list[int], list[credentials.Known], credentials.ScriptFiles]:
    """Seed (unless already seeded to that count), then a real token for each known user, then the files."""
    bar = Bar(f"seed {plan.users} users", plan.users)
    seeded = credentials.seed(config, plan.users, lambda done, total: bar.update(done))
    bar.finish("already seeded" if seeded.skipped else "")
    run["seed"] = {"users": plan.users, "skipped": seeded.skipped, "seconds": seeded.seconds}
    ids = credentials.seeded_ids(config, plan.users)
    known = credentials.known_users(config)
    bar = Bar("tokens (POST /auth/token)", len(known))
    known = credentials.with_tokens(stack.proxy_url, known, bar.update)
    bar.finish()
    return ids, known, credentials.write_files(folder, ids, known)


def _write(run: dict[str, Any], results_dir: Path, report_path: Path, beside: Path | None) -> None:
    """results.json, then the report: a main run with the cluster run beside it (if there is one); a
    cluster run rendered into the main run's report (or alone, when there is no main run yet)."""
    from loadtest import report
    if run["section"] == "main":
        other_path = beside or cluster.CLUSTER_RESULTS
        other = cluster.load(other_path)
        report.write(run, results_dir, report_path, (other, other_path.parent) if other is not None else None)
        return
    main_path = beside or cluster.MAIN_RESULTS
    main_run = cluster.load(main_path)
    if main_run is None:
        say(f"no one-node run at {main_path}: the report holds the cluster run alone")
        report.write_cluster_only(run, results_dir, report_path)
        return
    report.save(run, results_dir)
    report.publish(main_run, main_path.parent, report_path, (run, results_dir))


def probe_alive(stack: Stack) -> bool:
    try:
        stack.admin("GET", "/-/admin/state")
        return True
    except TargetError:
        return False


def _config_record(config: Any) -> dict[str, Any]:
    def plain(section: Any) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(section).items()}

    # Secrets from the environment are fields too (repr=False); the record keeps none of them.
    proxy = {k: v for k, v in plain(config.proxy).items() if k != "admin_token_env"}
    read = next((r for r in config.routes if "GET" in r.methods and r.path == "/users/{id:int}"), None)
    return {"path": str(config.path) if config.path else None, "proxy": proxy, "cache": plain(config.cache),
            "route_ttl": read.ttl if read is not None and read.ttl is not None else config.cache.default_ttl,
            "redis": {k: v for k, v in plain(config.redis).items() if k not in ("url", "password_env")},
            "env_overrides": sorted(k for k in os.environ if k.startswith("CACHEGATE"))}


def _clear(results_dir: Path) -> None:
    """Raw files of an earlier run would be mistaken for this one's."""
    raw = results_dir / "raw"
    if raw.is_dir():
        for path in raw.glob("*.txt"):
            path.unlink()
    (results_dir / "results.json").unlink(missing_ok=True)
    raw.mkdir(parents=True, exist_ok=True)


if __name__ == "__main__":
    sys.exit(main())

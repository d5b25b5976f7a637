"""From a composed ``dfdetect/conf/attack.yaml`` to a finished (or safely stopped) measurement; used by
scripts/attack.py. Exit codes: 0 done (or dry run), 2 missing credentials / bad input,
3 stopped by the cost guard, 4 failed: the provider refused the credentials, or no call sent got
an answer."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from dfdetect.measure.cache import ApiCache
from dfdetect.measure.cost import CostMeter
from dfdetect.measure.credentials import auth_hint, credential_variables, missing_credentials
from dfdetect.measure.crop import FaceCropper, crop_tag
from dfdetect.measure.errors import AttackDataError
from dfdetect.measure.journal import CallJournal
from dfdetect.measure.pairs import pairs_from_csv, pairs_from_store
from dfdetect.measure.providers.base import CredentialsError
from dfdetect.measure.ratelimit import Backoff, RateLimiter
from dfdetect.measure.redact import Redactor, SecretScrubber, env_secrets
from dfdetect.measure.registry import build_client, get_provider
from dfdetect.measure.runner import Executor, RunOptions, build_tasks, hash_images, plan_run, register_images
from dfdetect.preprocess.settings import ClipSettings
from dfdetect.utils.io import write_json

log = logging.getLogger(__name__)

EXIT_OK, EXIT_INPUT, EXIT_BUDGET, EXIT_FAILED = 0, 2, 3, 4


def load_pairs(cfg: DictConfig):
    """(pairs, use_crop_by_default): a CSV (raw stills: crop) or the data config's store (crops)."""
    a = cfg.attack
    if a.get("pairs_csv"):
        return pairs_from_csv(a.pairs_csv, a.dataset or Path(a.pairs_csv).stem), True
    data = cfg.get("data")
    if data is None:
        raise AttackDataError("no input: pass attack.pairs_csv=<csv> or data=<name> (a clip store)")
    store = data.get("store")
    if isinstance(store, DictConfig):  # e.g. the demo: a partial that builds the store
        store = hydra.utils.instantiate(store)()
    pairs, orphans = pairs_from_store(store, int(a.images_per_video))
    if orphans:
        log.warning("identities with fakes but no real video (left out): %s", ", ".join(orphans))
    if not pairs:
        raise AttackDataError(f"{store}: no fake with a real image of its identity")
    return pairs, False


def crop_settings(cfg: DictConfig) -> ClipSettings:
    face = OmegaConf.to_container(cfg.attack.face, resolve=True)
    return ClipSettings(clips_per_video=1, frames_per_clip=1, **face)


def run_options(cfg: DictConfig, provider_cfg: DictConfig, tag: str) -> RunOptions:
    a = cfg.attack
    return RunOptions(
        provider=a.provider,
        crop_tag=tag,
        concurrency=int(provider_cfg.concurrency),
        max_attempts=int(a.retry.max_attempts),
        backoff=Backoff(
            float(a.retry.backoff_base_s), float(a.retry.backoff_cap_s), float(a.retry.max_retry_after_s)
        ),
        price_tiers=OmegaConf.to_container(provider_cfg.price_tiers),
        calls_this_month=int(a.calls_this_month),
        max_cost=None if a.max_cost is None else float(a.max_cost),
        resend_in_flight=bool(a.resend_in_flight),
        retry_client_errors=bool(a.retry_client_errors),
        compare_params=get_provider(a.provider).compare_params(provider_cfg.client),
        progress=bool(a.progress),
    )


def run_attack(cfg: DictConfig) -> tuple[int, dict]:
    a = cfg.attack
    record = get_provider(a.provider)
    provider = record.name
    provider_cfg = cfg.providers[provider]
    pairs, crop_default = load_pairs(cfg)
    if a.limit:
        pairs = pairs[: int(a.limit)]
    use_crop = crop_default if a.crop in (None, "auto") else bool(a.crop)
    settings = crop_settings(cfg) if use_crop else None
    opts = run_options(cfg, provider_cfg, crop_tag(settings))

    shas = hash_images(pairs)
    cache_path = Path(a.cache)
    summary: dict = {
        "provider": provider,
        "cache": str(cache_path),
        "pairs": len(pairs),
        "crop": opts.crop_tag,
    }
    with ApiCache(cache_path) as cache:
        journal = CallJournal(cache_path)
        try:
            register_images(cache, pairs, shas)
            tasks = build_tasks(pairs, shas, opts)
            plan = plan_run(cache, journal, tasks, opts)
            for line in plan.lines(provider):
                print(line, flush=True)
            summary.update(
                plan=plan.by_operation(),
                estimated_requests=plan.requests,
                estimated_cost_usd=round(plan.cost_usd, 6),
                in_flight_skipped=len(plan.in_flight_skipped),
                similarity="available" if record.has_similarity else "unavailable",
            )
            if a.dry_run:
                summary["dry_run"] = True
                return _dry_run_credentials(cfg, plan, provider_cfg, summary), summary
            if opts.max_cost is not None and plan.cost_usd > opts.max_cost:
                msg = (
                    f"estimated cost {plan.cost_usd:.4f} USD exceeds attack.max_cost={opts.max_cost:.2f}:"
                    " nothing sent (raise attack.max_cost or lower attack.limit)"
                )
                print(msg, flush=True)
                summary["stopped"] = msg
                return EXIT_BUDGET, summary
            return _send(cfg, plan, opts, provider_cfg, settings, cache, journal, summary)
        finally:
            journal.close()


def _dry_run_credentials(cfg, plan, provider_cfg, summary: dict) -> int:
    """The dry run's check that the credentials the planned calls need are set (offline)."""
    provider = cfg.attack.provider
    operations = sorted({t.operation for t in plan.to_send})
    missing = []
    if cfg.attack.get("check_credentials", True):
        missing = missing_credentials(provider, provider_cfg.client, operations)
    if missing:
        summary["missing_credentials"] = missing
        print(f"dry run: nothing sent; {provider} needs credentials that are not set:", flush=True)
        for what in missing:
            print(f"  missing: {what}", flush=True)
        return EXIT_INPUT
    if operations and cfg.attack.get("check_credentials", True):
        names = credential_variables(provider, provider_cfg.client, operations)
        print(f"  credentials: set ({', '.join(names) or 'none needed'})", flush=True)
    print("dry run: nothing sent", flush=True)
    return EXIT_OK


def _outcome_lines(provider: str, stats, n_to_send: int, settings) -> tuple[int, list[str]]:
    """(exit code, what to print) after the calls: refused credentials and runs in which no call
    got an answer fail (exit 4) with one clear line each."""
    answered = stats.statuses.get("ok", 0) + stats.statuses.get("no_face", 0)
    failed = stats.statuses.get("error", 0)
    codes = ", ".join(f"{n} × {code}" for code, n in stats.error_codes.most_common(5))
    lines = []
    if stats.refused:
        hint = auth_hint(provider, settings, stats.refused_operations)
        lead = "no call answered" if not answered else f"{answered} calls answered before"
        lines.append(
            f"{provider}: authentication failed ({lead}): {stats.auth_message}"
            f" ({', '.join(sorted(stats.refused_operations))}) — {hint}"
        )
        not_sent = n_to_send - stats.sent - stats.refused
        lines.append(
            f"  stopped: {stats.refused} calls refused (not cached, not billed), {not_sent} not sent;"
            " a rerun with the right credentials sends them"
        )
        return EXIT_FAILED, lines
    if failed and not answered:
        transient = sum(n for code, n in stats.error_codes.items() if code.startswith("transient:"))
        advice = []
        if transient:
            advice.append("transient failures are sent again by a rerun")
        if failed > transient:
            advice.append("client errors are kept (attack.retry_client_errors=true sends them again)")
        lines.append(f"all {failed} calls failed: {codes} ({provider}); {'; '.join(advice)}")
        return EXIT_FAILED, lines
    if failed:
        lines.append(f"  {failed} of {stats.sent} calls failed: {codes}")
    return EXIT_OK, lines


def _send(cfg, plan, opts, provider_cfg, settings, cache, journal, summary) -> tuple[int, dict]:
    to_send = plan.to_send
    if settings is not None and to_send:
        cropper = FaceCropper(
            hydra.utils.instantiate(cfg.attack.detector), settings, Path(cfg.attack.crop_dir)
        )
        needed = {}
        for t in to_send:
            needed[t.image_sha256] = t.image_path
            if t.ref_path is not None:
                needed[t.ref_sha256] = t.ref_path
        no_face = {}
        for sha, path in _progress(needed.items(), cfg.attack.progress, "face crops"):
            data, why = cropper.crop(path, sha)
            if data is None:
                no_face[sha] = f"{path}: {why}"
        if no_face:
            log.warning("no face found in %d images; their calls are not sent", len(no_face))
            summary["no_face_in_crop"] = sorted(no_face.values())
        to_send = [t for t in to_send if t.image_sha256 not in no_face and t.ref_sha256 not in no_face]

        def image_bytes(path, sha):
            return cropper.path_for(sha).read_bytes()
    else:

        def image_bytes(path, sha):
            return Path(path).read_bytes()

    if not to_send:
        summary.update(sent=0, statuses={}, requests=0, spent_usd=0.0)
        return EXIT_OK, summary
    limiter = RateLimiter(float(provider_cfg.rate_limit), int(provider_cfg.burst))
    try:
        client = build_client(opts.provider, provider_cfg.client, gate=limiter.acquire)
    except CredentialsError as e:
        print(f"attack: {e}", flush=True)
        summary["stopped"] = str(e)
        return EXIT_INPUT, summary
    meter = CostMeter(opts.price_tiers, opts.max_cost, opts.calls_this_month)
    secrets = client.secrets() + env_secrets(credential_variables(opts.provider, provider_cfg.client))
    redact = Redactor(secrets)
    with SecretScrubber(secrets):
        try:
            stats = Executor(client, cache, journal, meter, opts, image_bytes, redact=redact).run(to_send)
        finally:
            client.close()
    summary.update(
        sent=stats.sent,
        statuses=dict(stats.statuses),
        error_codes=dict(stats.error_codes),
        refused=stats.refused,
        requests=stats.requests,
        spent_usd=stats.spent_usd,
    )
    print(
        f"{opts.provider}: {stats.sent} calls answered {dict(stats.statuses)};"
        f" {stats.requests} requests, {stats.spent_usd:.4f} USD",
        flush=True,
    )
    code, lines = _outcome_lines(opts.provider, stats, len(to_send), provider_cfg.client)
    for line in lines:
        print(redact.text(line), flush=True)
    if code != EXIT_OK:
        summary["failed"] = redact.text(lines[0])
    if stats.stopped:
        print(f"stopped: {stats.stopped}", flush=True)
        summary["stopped"] = stats.stopped
        return EXIT_BUDGET, summary
    return code, summary


def _progress(items, enabled: bool, desc: str):
    items = list(items)
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="img")


def attack_from_config(cfg: DictConfig) -> int:
    try:
        code, summary = run_attack(cfg)
    except (AttackDataError, FileNotFoundError) as e:
        print(f"attack: {e}", flush=True)
        return EXIT_INPUT
    out_dir = cfg.paths.get("output_dir")
    if out_dir:
        write_json(Path(out_dir) / "attack_summary.json", summary)
    return code

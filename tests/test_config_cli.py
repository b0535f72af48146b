import os
import subprocess
import sys
from pathlib import Path

import pytest

from livedance import config
from livedance.cli import main
from livedance.errors import UserError


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livedance.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_defaults_then_file_then_overrides(tmp_path: Path):
    f = tmp_path / "c.toml"
    f.write_text('[engine]\nfps = 30\ndancers = 2\n[osc]\nout = "10.0.0.5:7000"\n')
    s = config.load(f, ["engine.fps=50", "audio.device=USB"])
    assert s.engine.fps == 50.0 and isinstance(s.engine.fps, float)
    assert s.engine.dancers == 2
    assert s.osc.out == "10.0.0.5:7000"
    assert s.audio.device == "USB"
    assert s.audio.hop == config.AudioSettings().hop


def test_bad_key_names_the_key(tmp_path: Path):
    f = tmp_path / "c.toml"
    f.write_text("[engine]\nfsp = 30\n")
    with pytest.raises(UserError, match=r"unknown key 'engine\.fsp'"):
        config.load(f)


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("[engin]\nfps = 30\n", r"unknown section \[engin\]"),
        ('[engine]\nfps = "fast"\n', r"'engine\.fps' must be float"),
        ("[engine]\ndancers = 1.5\n", r"'engine\.dancers' must be int"),
        ("[engine\n", r"not valid TOML"),
    ],
)
def test_bad_files_are_user_errors(tmp_path: Path, text: str, pattern: str):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(UserError, match=pattern):
        config.load(f)


def test_printed_settings_load_back_to_the_same(tmp_path: Path):
    s = config.load(None, ["engine.seed=7", "osc.allow=['127.0.0.1']"])
    f = tmp_path / "round.toml"
    f.write_text(config.to_toml(s))
    assert config.load(f) == s


def test_cli_bad_toml_key_is_one_line_exit_2(tmp_path: Path):
    f = tmp_path / "c.toml"
    f.write_text("[audio]\nhopp = 256\n")
    r = run_cli("--config", str(f), "config")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert "audio.hopp" in r.stderr and "Traceback" not in r.stderr


def test_cli_config_prints_effective_settings(tmp_path: Path):
    f = tmp_path / "c.toml"
    f.write_text("[viewer]\nwidth = 640\n")
    r = run_cli("config", "--help")
    assert r.returncode == 0
    r = run_cli("--config", str(f), "--set", "engine.dancers=3", "config")
    assert r.returncode == 0, r.stderr
    assert "width = 640" in r.stdout and "dancers = 3" in r.stdout


def test_cli_version_and_missing_config(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "livedance" in capsys.readouterr().out
    assert main(["--config", "/nonexistent/x.toml", "config"]) == 2
    assert "not found" in capsys.readouterr().err


def test_internal_error_traceback_only_with_verbose(monkeypatch, capsys):
    import livedance.cli as cli

    def boom(args, settings):
        raise RuntimeError("kaput")

    monkeypatch.setattr(cli, "run_config", boom)
    assert main(["config"]) == 1
    err = capsys.readouterr().err
    assert "kaput" in err and "Traceback" not in err
    assert main(["-v", "config"]) == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.slow
def test_pip_install_in_fresh_venv_gives_working_cli(tmp_path: Path):
    repo = Path(__file__).resolve().parents[1]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(repo)],
        capture_output=True, text=True, timeout=900,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([str(venv / "bin" / "livedance"), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "usage: livedance" in r.stdout
    r = subprocess.run([str(venv / "bin" / "livedance"), "config"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "[engine]" in r.stdout

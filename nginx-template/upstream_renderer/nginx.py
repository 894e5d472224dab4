"""nginx: test a candidate config, make the running master load it, and fill nginx.conf.tmpl."""

from __future__ import annotations

import string
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class NginxControl:
    """How to test a candidate config and make nginx load it."""

    check_cmd: Sequence[str] | None
    reload_cmd: Sequence[str] | None
    pid_file: Path | None = None  # reload only when nginx runs (pid file present)

    @classmethod
    def from_options(
        cls,
        nginx_bin: str,
        prefix: str | None = None,
        conf: str | None = None,
        check_cmd: str | None = None,
        reload_cmd: str | None = None,
        reload: bool = True,
    ) -> "NginxControl":
        """Shell commands when given, else nginx -t / -s reload on -p PREFIX -c CONF (default PREFIX/nginx.conf)."""
        check = ["/bin/sh", "-c", check_cmd] if check_cmd else None
        reloader = ["/bin/sh", "-c", reload_cmd] if reload_cmd else None
        pid_file = None
        if prefix:
            root = Path(prefix)
            base = ["-p", str(root), "-c", conf or str(root / "nginx.conf"), "-e", str(root / "error.log")]
            check = check or [nginx_bin, "-t", "-q", *base]
            if reloader is None:
                reloader, pid_file = [nginx_bin, "-s", "reload", *base], root / "nginx.pid"
        if not reload:
            reloader = None
        return cls(check_cmd=check, reload_cmd=reloader, pid_file=pid_file)

    def check(self) -> tuple[bool, str]:
        return run_command(self.check_cmd) if self.check_cmd else (True, "")

    def reload(self) -> tuple[bool | None, str]:
        """True/False for the reload result; None when there was nothing to reload."""
        if not self.reload_cmd:
            return None, "no reload command"
        if self.pid_file is not None and not self.pid_file.exists():
            return None, "nginx not running"
        return run_command(self.reload_cmd)


def run_command(argv: Sequence[str]) -> tuple[bool, str]:
    """Success and the output's last 2000 characters; a command that cannot run or hangs fails."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return done.returncode == 0, (done.stdout + done.stderr).strip()[-2000:]


def fill_nginx_conf(template_text: str, prefix: str, upstream_conf: str, listen: str = "127.0.0.1:8080") -> str:
    """nginx.conf.tmpl filled in; its nginx variables are written $$name so substitute() works."""
    return string.Template(template_text).substitute(PREFIX=prefix, LISTEN=listen, UPSTREAM_CONF=upstream_conf)

"""The public surface of ``opentao``: every name in ``__all__`` resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import opentao


def test_every_public_name_resolves():
    assert len(opentao.__all__) == len(set(opentao.__all__)) >= 12
    for name in opentao.__all__:
        obj = getattr(opentao, name)
        assert obj is not None
        assert getattr(obj, "__name__", name) == name
        assert name in dir(opentao)


def test_unknown_name_is_an_attribute_error():
    try:
        opentao.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_opentao_stays_light():
    code = ("import sys, opentao; heavy = [m for m in ('torch', 'transformers', 'pydantic', 'pyarrow') "
            "if m in sys.modules]; assert not heavy, heavy; from opentao import GenRequest, Generator; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_verb_modules_do_not_import_each_other():
    from pathlib import Path

    import opentao.cli

    root = Path(opentao.cli.__file__).parent
    verbs = ("run", "serve", "inspect")
    for v in verbs:
        text = (root / f"{v}.py").read_text()
        for other in verbs:
            assert f"opentao.cli.{other}" not in text or other == v
            assert f"from opentao.cli import {other}" not in text

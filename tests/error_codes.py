"""The ``error`` codes the services actually send, found in their sources with ``ast``.

A code is sent where it is the first argument (or the ``code=`` keyword) of one of the calls
that become an ``error`` message or a refusal: ``ProtocolError``, ``AuthError``, ``Refusal``,
``protocol.Error``, ``ErrorResult``, a connection's ``error``/``_refuse``, and a translation
outcome; or where ``ErrorCode.NAME`` is named. Names are resolved through the module-level
string constants of the scanned packages (``TOKEN_MISSING = "token_missing"``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICE_PACKAGES = ("common", "gateway", "stt_worker", "translation_worker")
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
#: callee name -> index of its code argument
CODE_CALLS = {
    "ProtocolError": 0, "AuthError": 0, "Refusal": 0, "error": 0, "_error": 0, "_refuse": 0,
    "refuse": 0, "send_error": 0, "TranslationOutcome": 1, "_stand_in": 2,
}
#: receivers whose ``.error(...)`` is a log line, not a message to a client
_LOGGERS = {"log", "logger", "logging", "_log"}


#: REST on the public port answers HTTP errors with codes of their own (``{"error": {"code"}}``,
#: OpenAI's for ``/v1/audio``), never a WebSocket ``error`` message.
REST_MODULES = ("gateway/routes/", "gateway/http_")


def _sources() -> Iterator[tuple[Path, ast.Module]]:
    for package in SERVICE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if str(path.relative_to(ROOT)).startswith(REST_MODULES):
                continue
            yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _constants(trees: list[ast.Module]) -> dict[str, str]:
    found: dict[str, str] = {}
    for tree in trees:
        for node in tree.body:
            targets: list[ast.expr] = []
            value: ast.expr | None = None
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                for target in targets:
                    if isinstance(target, ast.Name) and target.id.isupper():
                        found[target.id] = value.value
    return found


def _error_code_members(trees: list[ast.Module]) -> dict[str, str]:
    """``class ErrorCode`` bodies: NAME -> value."""
    members: dict[str, str] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == "ErrorCode":
                for item in node.body:
                    if (isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant)
                            and isinstance(item.value.value, str)):
                        for target in item.targets:
                            if isinstance(target, ast.Name):
                                members[target.id] = item.value.value
    return members


def _strings(node: ast.expr, constants: dict[str, str], members: dict[str, str]) -> set[str]:
    """String values an expression can have: literals, known constants, ErrorCode.X, and
    the alternatives of ``a or "b"`` / ``x if c else y``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Name) and node.id in constants:
        return {constants[node.id]}
    if _is_error_code(node):
        assert isinstance(node, ast.Attribute)
        return {members[node.attr]} if node.attr in members else set()
    if isinstance(node, ast.BoolOp):
        return set().union(*(_strings(v, constants, members) for v in node.values))
    if isinstance(node, ast.IfExp):
        return _strings(node.body, constants, members) | _strings(node.orelse, constants, members)
    return set()


def _is_error_code(node: ast.AST) -> bool:
    """``ErrorCode.X`` or ``protocol.ErrorCode.X``."""
    if not isinstance(node, ast.Attribute):
        return False
    owner = node.value
    return (isinstance(owner, ast.Name) and owner.id == "ErrorCode") or (
        isinstance(owner, ast.Attribute) and owner.attr == "ErrorCode")


def _callee(call: ast.Call) -> tuple[str, str | None]:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id, None
    if isinstance(func, ast.Attribute):
        receiver = func.value.id if isinstance(func.value, ast.Name) else None
        return func.attr, receiver
    return "", None


def codes_sent() -> dict[str, set[str]]:
    """code -> the files that send it."""
    parsed = list(_sources())
    trees = [tree for _, tree in parsed]
    constants = _constants(trees)
    members = _error_code_members(trees)
    sent: dict[str, set[str]] = {}
    for path, tree in parsed:
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            values: set[str] = set()
            if _is_error_code(node):
                assert isinstance(node, ast.Attribute)
                values = {members[node.attr]} if node.attr in members else set()
            elif isinstance(node, ast.Call):
                name, receiver = _callee(node)
                if receiver in _LOGGERS:
                    continue
                for keyword in node.keywords:
                    if keyword.arg == "code":
                        values |= _strings(keyword.value, constants, members)
                index = CODE_CALLS.get(name)
                if index is not None and len(node.args) > index:
                    values |= _strings(node.args[index], constants, members)
            for value in values:
                if _CODE.match(value):
                    sent.setdefault(value, set()).add(where)
    return sent

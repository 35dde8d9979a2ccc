"""The project's layers (``docs/architecture.md``, "Layers"), checked on every import, including the
ones inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hw", "sim", "host", "bench", "lab")
HOST_HW = {"hw", "hw.isa", "hw.numerics", "hw.config", "hw.layout", "hw.frame"}
"""What the host and the golden model may import of ``hw/``: the instruction set, the numerics, the
configuration, the buffer layout and the frame format, never gateware."""
HOST_SIM = {"sim.model", "sim.virtual"}
"""The host's targets other than a board: the golden model and the virtual board."""


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every project module ``path`` imports (``from hw import numerics`` counts as ``hw.numerics``)."""
    package = _module(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES and _exists(name)}


def _exists(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_imports_resolve_relative_and_from_package_forms():
    assert imports(ROOT / "hw" / "vector.py") >= {"hw.isa", "hw.numerics"}
    assert "hw.numerics" in imports(ROOT / "host" / "exponents.py")      # from hw import numerics


def test_host_sees_only_the_instruction_set_numerics_and_configuration():
    for path in _files("host"):
        for name in imports(path):
            top = name.split(".")[0]
            assert top != "hw" or name in HOST_HW, f"{path.name} imports {name}: only {sorted(HOST_HW)}"
            assert top != "sim" or name in HOST_SIM, f"{path.name} imports {name}: only {sorted(HOST_SIM)}"
            assert top not in ("bench", "lab"), f"{path.name} imports {name}"


def test_gateware_imports_neither_simulation_nor_host():
    for path in _files("hw"):
        for name in imports(path):
            assert name.split(".")[0] == "hw", f"{path.relative_to(ROOT)} imports {name}"


def test_the_contract_imports_only_the_contract():
    for name in HOST_HW - {"hw"}:
        found = imports(ROOT.joinpath(*name.split(".")).with_suffix(".py"))
        assert found <= HOST_HW, f"{name} imports {sorted(found - HOST_HW)}"
    assert imports(ROOT / "hw" / "isa.py") <= {"hw"}      # the units import the ISA, not the reverse


def test_golden_model_imports_no_gateware():
    seen, todo = set(), ["sim.model"]
    while todo:
        name = todo.pop()
        if name in seen or not name.startswith("sim."):
            continue
        seen.add(name)
        for imported in imports(ROOT.joinpath(*name.split(".")).with_suffix(".py")):
            assert not imported.startswith("hw") or imported in HOST_HW, f"{name} imports {imported}"
            todo.append(imported)
    assert {"sim.model", "sim.vector", "sim.reduce"} <= seen


def test_the_tensor_descriptor_is_defined_once():
    """The golden model's registers, the compiler's regions and TENSOR take their fields from
    ``hw.isa.TensorDescriptor``."""
    import dataclasses

    from host.compiler import Region
    from hw.isa import Buf, Instruction, TensorDescriptor
    from sim.model import Tensor

    fields = list(TensorDescriptor().members)
    assert [field.name for field in dataclasses.fields(Tensor)] == fields
    assert list(Region(Buf.W, 0, 2, 3, 1, 4).descriptor()) == fields
    assert list(Instruction()["args"].shape["tensor"].shape.members) == ["t", *fields]

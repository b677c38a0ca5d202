"""The architecture's import boundaries (docs/architecture.md), checked on the real modules in fresh interpreters."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _imported_top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package, forbidden", [
    ("ha2g_model", {"rclpy", "ha2g_ros", "training"}),
    ("ha2g_ros", {"training"}),
    ("ha2g_ros/retargeting", {"rclpy", "torch", "training"}),
    ("training", {"rclpy"}),
])
def test_no_source_file_crosses_a_boundary(package, forbidden):
    root = REPO if package == "training" else REPO / "ha2g_ros"  # training/ sits beside the package folder
    files = sorted((root / package).rglob("*.py"))
    assert files, f"no sources under {package}"
    crossings = {str(f.relative_to(REPO)): sorted(_imported_top_level_names(f) & forbidden) for f in files}
    assert {f: names for f, names in crossings.items() if names} == {}


def test_training_uses_only_the_ros_free_parts_of_ha2g_ros():
    """Robot metrics (retargeting) and espeak-ng speech (tts) in evaluation, never the nodes."""
    allowed = ("ha2g_ros.retargeting", "ha2g_ros.tts")
    found = {}
    for path in sorted((REPO / "training").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                if name.split(".")[0] == "ha2g_ros" and not name.startswith(allowed):
                    found.setdefault(str(path.relative_to(REPO)), []).append(name)
    assert found == {}
    loaded = _modules_after_import("import training.evaluate, training.vocabulary, ha2g_ros.tts")
    assert "rclpy" not in loaded


def _modules_after_import(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_retargeting_loads_without_ros_or_torch():
    loaded = _modules_after_import("import ha2g_ros.retargeting")
    assert "rclpy" not in loaded and "torch" not in loaded


def test_model_and_engine_load_without_ros():
    loaded = _modules_after_import("import ha2g_model.model, ha2g_model.engine, ha2g_model.checkpoint")
    assert "rclpy" not in loaded and "ha2g_ros" not in loaded and "training" not in loaded

"""The whole script of a kernel pushed by `cv --on kaggle`: this checkout's kaggle_digits
package, zipped and base64-encoded inside it, and the run to train; run, it unpacks the
package into a temporary folder and calls in_kernel.main. One file: a push is one call, and
nothing needs installing in the kernel (which has no internet)."""

import base64
import io
import json
import zipfile
from pathlib import Path

import kaggle_digits


def kernel_script(run_name: str, request: dict, spec: str, earlier: str | None) -> str:
    """The kernel's whole script: this package zipped inside it, and the run to train (its
    request, its competition's spec; `earlier`: the kernel whose output holds pairs)."""
    payload = {"run": run_name, "request": request, "spec": spec, "earlier": earlier}
    package = base64.b64encode(package_zip()).decode()
    lines = [package[start : start + 100] for start in range(0, len(package), 100)]
    return SCRIPT.format(
        run=run_name,
        payload=json.dumps(json.dumps(payload)),
        package="\n".join(f'    "{line}"' for line in lines),
    )


SCRIPT = """# kaggle-digits run {run}, pushed by `kaggle-digits cv --on kaggle`; it trains into
# /kaggle/working, and `kaggle-digits cv --resume {run}` brings the run home.
# The kaggle-digits package travels below, zipped, so that nothing needs installing.
import base64, io, json, sys, tempfile, zipfile

PAYLOAD = json.loads({payload})
PACKAGE = (
{package}
)

if __name__ == "__main__":  # not again in the worker processes (spawned)
    folder = tempfile.mkdtemp(prefix="kaggle-digits-")
    zipfile.ZipFile(io.BytesIO(base64.b64decode(PACKAGE))).extractall(folder)
    sys.path.insert(0, folder)
    from kaggle_digits.kaggle.in_kernel import main

    sys.exit(main(PAYLOAD))
"""


def package_zip() -> bytes:
    """This checkout's kaggle_digits package, its Python files zipped, folders and all."""
    source = Path(kaggle_digits.__file__).parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(source.rglob("*.py")):
            archive.write(path, f"kaggle_digits/{path.relative_to(source).as_posix()}")
    return buffer.getvalue()

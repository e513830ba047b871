"""The whole script of a kernel pushed by `cv --on kaggle`: this checkout's kaggle_digits
package, zipped and base64-encoded inside it, and the run to train; run, it unpacks the
package into a temporary folder and calls in_kernel.main. One file: a push is one call, and
nothing needs installing in the kernel (which has no internet). For a push by hand, the
script and its kernel-metadata.json as `kaggle kernels push -p DIR` reads them."""

import base64
import io
import json
import zipfile
from pathlib import Path

import kaggle_digits
from kaggle_digits.base.files import write_json, write_text

METADATA = "kernel-metadata.json"


def kernel_script(run_name: str, request: dict, spec: str, earlier: dict | None) -> str:
    """The kernel's whole script: this package zipped inside it, and the run to train (its
    request, its competition's spec; `earlier`: the dataset that holds its finished pairs,
    and how many)."""
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
    from kaggle_digits.on_kaggle.in_kernel import main

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


def write_kernel_files(
    folder: Path, ref: str, script: str, competition: str, accelerator: str | None
) -> list[Path]:
    """The kernel as `kaggle kernels push -p folder` reads it: the script, and the
    kernel-metadata.json that asks for what a push of ours does (private, internet off, the
    competition attached, the machine shape). The files written."""
    slug = ref.split("/", 1)[1]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    metadata = {
        "id": ref,
        "title": slug,  # a title that resolves to the slug
        "code_file": f"{slug}.py",
        "language": "python",
        "kernel_type": "script",
        "is_private": True,
        "enable_gpu": accelerator is not None,
        "enable_tpu": False,
        "enable_internet": False,
        "machine_shape": accelerator or "",
        "competition_sources": [competition],
        "dataset_sources": [],
        "kernel_sources": [],
        "model_sources": [],
    }
    write_text(folder / metadata["code_file"], script)
    write_json(folder / METADATA, metadata)
    return [folder / metadata["code_file"], folder / METADATA]

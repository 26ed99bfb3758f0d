"""Write (or with --check, compare) the C runtime's generated headers, each from its one Python
definition:

* edgebrain/cruntime/eb_layout.h: blob offsets, status codes, opcodes, row columns and neuron
  flags (edgebrain.blob.c_header(), from edgebrain/blob.py, kernels/layout.py, kernels/neuron.py);
* edgebrain/cruntime/eb_proto_layout.h: the board link's frame header, message types, field
  offsets and error codes (edgebrain.proto.c_header(), from edgebrain/proto.py).

    python tools/firmware/gen_header.py          # rewrite them
    python tools/firmware/gen_header.py --check  # exit 1 if a committed copy is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edgebrain import blob, proto  # noqa: E402

RUNTIME = REPO / "edgebrain" / "cruntime"
HEADERS = {RUNTIME / "eb_layout.h": blob.c_header, RUNTIME / "eb_proto_layout.h": proto.c_header}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    stale = 0
    for path, generate in HEADERS.items():
        text = generate()
        if "--check" in argv:
            if not path.is_file() or path.read_text() != text:
                print(f"{path.relative_to(REPO)} is stale: run python tools/firmware/gen_header.py", file=sys.stderr)
                stale = 1
            continue
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO)}")
    return stale


if __name__ == "__main__":
    sys.exit(main())

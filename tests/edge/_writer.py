"""Subprocess used by the kill -9 test: writes and acknowledges events as fast as it can.

Protocol on stdout (flushed per line): ``p ID`` before a put, ``P ID`` after its commit,
``a ID`` before an ack, ``A ID`` after it. The parent SIGKILLs this process at a random
moment and then checks the file against what was announced.
"""

from __future__ import annotations

import random
import sys

from checkpost.edge.outbox import Outbox

from checkpost.protocol import Scan, uuid7


def main() -> None:
    path, seed = sys.argv[1], int(sys.argv[2])
    rnd = random.Random(seed)
    box = Outbox(path)
    out = sys.stdout
    for _ in range(100_000):  # bounded; the parent kills us long before
        if rnd.random() < 0.7 or box.depth == 0:
            batch = [
                Scan(id=uuid7(), unit="unit-k", seq=0, ts=1.0e9, code=f"HP1:{rnd.random()}")
                for _ in range(rnd.randint(1, 5))
            ]
            out.write("".join(f"p {e.id}\n" for e in batch))
            out.flush()
            box.put(batch)
            out.write("".join(f"P {e.id}\n" for e in batch))
            out.flush()
        else:
            ids = [p.id for p in box.pending(limit=rnd.randint(1, 4))]
            out.write("".join(f"a {i}\n" for i in ids))
            out.flush()
            box.ack(ids)
            out.write("".join(f"A {i}\n" for i in ids))
            out.flush()


if __name__ == "__main__":
    main()

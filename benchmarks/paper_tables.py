"""The paper's whole study on a bundled dataset: Table 1, Table 2, the invalid ratio, a budget
curve (`hourglass.study.runner`; also the `hourglass-paper-tables` command).

    .venv/bin/python benchmarks/paper_tables.py --dataset amazon-office           # the study
    .venv/bin/python benchmarks/paper_tables.py --dataset amazon-office --quick   # minutes
"""

from __future__ import annotations

from hourglass.study.runner import main

if __name__ == "__main__":
    main()

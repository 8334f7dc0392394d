"""Run the DAG once with Airflow's own `dag.test()` (a DagRun in the metadata database, every
task executed in this process in dependency order), for one logical date and run conf; print the
DagRun's id and state and each task's state as JSON on the last line. An optional fourth
argument names the tasks to run (comma-separated): the DAG's `partial_subset` of them, in their
order, as an operator re-runs part of a DAG.

A separate process: Airflow reads its configuration (AIRFLOW_HOME, connections) at import time.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime


def main() -> None:
    dag_folder, logical_date, conf = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=dag_folder)
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags["hourglass_pipeline"]
    if len(sys.argv) > 4:
        dag = dag.partial_subset(sys.argv[4].split(","), include_upstream=False)
    run = dag.test(logical_date=datetime.fromisoformat(logical_date), run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    print(json.dumps({"run_id": run.run_id, "state": str(run.state), "tasks": states}))


if __name__ == "__main__":
    main()

"""Expected failures, each with the exit status a scheduler can branch on.

A person (or an Airflow task) should tell "fix the config" from "the inputs are missing or
bad" from "a bug" without reading a traceback: the console commands turn these errors into one
line on stderr and their `exit_status`; any other exception keeps its traceback (status 1).
Base layer: no imports, so every layer can raise them.
"""

from __future__ import annotations

CONFIG_ERROR = 2  # argparse's own status for bad arguments
INPUT_ERROR = 3
CONFLICT_ERROR = 75  # sysexits' EX_TEMPFAIL: a temporary failure, worth retrying the task


class HourglassError(Exception):
    """An expected failure whose message names the problem and the fix."""

    exit_status = 1


class ConfigError(HourglassError, ValueError):
    """A configuration key is unknown, missing, or has an invalid value."""

    exit_status = CONFIG_ERROR


class InputError(HourglassError):
    """An input the job reads is missing or invalid: a table, a column, a codebook artifact, a
    fine-tuned model."""

    exit_status = INPUT_ERROR


class MissingInputError(InputError, FileNotFoundError):
    """A table, artifact or model folder the job reads does not exist (yet)."""


class TableNotFoundError(MissingInputError):
    """A Delta table the job reads does not exist (yet)."""

    @classmethod
    def of(cls, ref: str) -> TableNotFoundError:
        """The one message for a missing table, whichever reader (Spark or deltalake) found it."""
        return cls(f"Delta table not found: {ref}; run the stage that writes it first, or point "
                   "output_root (or the job's *_table key) at where it is")


class CommitConflictError(HourglassError):
    """Concurrent writers kept conflicting with this job's commit to a Delta table after every
    retry; nothing of this commit landed, and re-running the task is safe (writes replace their
    own slice, so they never duplicate rows)."""

    exit_status = CONFLICT_ERROR

"""The fine-tuned retriever as an MLflow pyfunc: a user's item history (and, for a model
fine-tuned for search, the query) in, the top SIDs and their items out, decoded inside the trie
of the strategy the model was trained on.

What the registry holds (Unity Catalog or a workspace/SQLite registry) is a whole model: the
fine-tuned folder, the strategy's catalog (item → SID tokens, popularity) and the package code
itself (`code_paths`), with an input/output signature and an input example, so any MLflow host
loads it with `mlflow.pyfunc.load_model` and needs no checkout and no Delta table.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow.pyfunc

from hourglass.sft.format import uses_query

CATALOG_FILE = "catalog.parquet"
ARTIFACT_PATH = "sid_retriever"  # under the evaluation's MLflow run
HISTORY = "history"  # the input column: item ids, oldest first
QUERY = "query"  # the input column of a search model (prompt modes query_history, query)
OUTPUT_COLUMNS = ("item_ids", "sids", "scores")
_REQUIREMENTS = ("torch", "transformers", "numpy", "pandas", "pyarrow")


class SidRetriever(mlflow.pyfunc.PythonModel):
    """Constrained beam search of one strategy's SIDs from an item history (and a query).

    Histories name items by id; items without a SID in the catalog (new since the SIDs were
    made) are left out of the prompt, as the SFT data leaves them out. A model fine-tuned with
    prompt mode `query` reads the query only (a `history` column, if given, is ignored).
    """

    def load_context(self, context: Any) -> None:
        import pandas as pd

        from hourglass.decode.ranking import Catalog, Ranker
        from hourglass.evaluation.lm import load_finetuned
        from hourglass.sft.tokenizer import query_ids_for

        cat = pd.read_parquet(context.artifacts["catalog"])
        tokens = [list(t) for t in cat["tokens"]]
        self.tokens_of = dict(zip(cat["item_id"], tokens, strict=True))
        popularity = dict(zip(cat["item_id"], cat["popularity"].astype(int), strict=True))
        model, tok, meta = load_finetuned(context.artifacts["model"])
        config = context.model_config
        self.beam = int(config["beam"])
        self.mode = meta.get("prompt_mode", "history")
        self.ranker = Ranker(model, tok, Catalog.build(cat["item_id"].tolist(), tokens, popularity),
                             self.beam, int(config["max_prompt_len"]),
                             queries=query_ids_for(tok, meta))

    # model_input is not annotated: MLflow would read an annotation as the input schema, which
    # the logged signature gives (a DataFrame with the array column `history`).
    def predict(self, context: Any, model_input, params: Mapping[str, Any] | None = None
                ) -> Any:
        import pandas as pd

        from hourglass.sft.format import join_history

        k = int((params or {}).get("k", 10))
        if not 1 <= k <= self.beam:
            raise ValueError(f"k={k}: must be 1..{self.beam}, the beam this model was logged with")
        queries = None
        if self.ranker.queries is not None:
            if QUERY not in model_input:
                raise ValueError(f"this retriever was fine-tuned with prompt_mode {self.mode}: "
                                 f"give a `{QUERY}` column")
            queries = list(model_input[QUERY])
        if self.mode == "query":
            prompts = [[] for _ in range(len(model_input))]
        else:
            prompts = [join_history([self.tokens_of[i] for i in h if i in self.tokens_of])
                       for h in model_input[HISTORY]]
        out = self.ranker.decode(self.ranker.prompts(prompts, queries), constrained=True)
        rows = []
        for u in range(len(prompts)):
            found = self.ranker.sids(out, u)
            rows.append({"item_ids": self.ranker.items_of(found, k),
                         "sids": [" ".join(s) for s, _ in found[:k]],
                         "scores": [score for _, score in found[:k]]})
        return pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))


def signature(prompt_mode: str = "history") -> Any:
    """`history` array<string> (and `query` string for a search model; `query` alone for mode
    `query`) in; `item_ids`, `sids` array<string> and `scores` array<double> out; the parameter
    `k` (top SIDs and items, at most the logged beam)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, ParamSchema, ParamSpec, Schema

    inputs = [ColSpec(Array(DataType.string), HISTORY)] if prompt_mode != "query" else []
    if uses_query(prompt_mode):
        inputs.append(ColSpec(DataType.string, QUERY))
    return ModelSignature(
        inputs=Schema(inputs),
        outputs=Schema([ColSpec(Array(DataType.string), "item_ids"),
                        ColSpec(Array(DataType.string), "sids"),
                        ColSpec(Array(DataType.double), "scores")]),
        params=ParamSchema([ParamSpec("k", DataType.long, 10)]))


def requirements() -> list[str]:
    """The installed versions of what the retriever imports (hourglass itself ships as code)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in _REQUIREMENTS]


def save_retriever(folder: Path, model_dir: str, item_ids: Sequence[str],
                   tokens: Sequence[Sequence[str]], popularity: Mapping[str, int], beam: int,
                   max_prompt_len: int, example_query: str | None = None) -> Path:
    """Write the pyfunc model folder (MLmodel, artifacts, code) under `folder`; the signature
    and input example follow the prompt mode the model was fine-tuned with."""
    import json

    import pandas as pd

    import hourglass
    from hourglass.train.layout import META_FILE

    folder.mkdir(parents=True, exist_ok=True)
    catalog = folder / CATALOG_FILE
    pd.DataFrame({"item_id": list(item_ids), "tokens": [list(t) for t in tokens],
                  "popularity": [int(popularity.get(i, 0)) for i in item_ids]}
                 ).to_parquet(catalog, index=False)
    path = folder / ARTIFACT_PATH
    meta_file = Path(model_dir) / META_FILE
    mode = (json.loads(meta_file.read_text()) if meta_file.exists() else {}).get(
        "prompt_mode", "history")
    example = pd.DataFrame({
        **({HISTORY: [list(item_ids[:3])]} if mode != "query" else {}),
        **({QUERY: [example_query or "query"]} if uses_query(mode) else {})})
    mlflow.pyfunc.save_model(
        str(path), python_model=SidRetriever(),
        artifacts={"model": str(model_dir), "catalog": str(catalog)},
        model_config={"beam": int(beam), "max_prompt_len": int(max_prompt_len)},
        code_paths=[str(Path(hourglass.__file__).parent)], signature=signature(mode),
        input_example=example, pip_requirements=requirements())
    return path


def log_retriever(run: Any, **kwargs: Any) -> str:
    """Save the retriever (`save_retriever`'s arguments) and log it to `run`; its URI."""
    with tempfile.TemporaryDirectory(prefix="hourglass-pyfunc-") as tmp:
        path = save_retriever(Path(tmp), **kwargs)
        run.artifacts(path, ARTIFACT_PATH)
    return run.artifact_uri(ARTIFACT_PATH)

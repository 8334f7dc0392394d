"""Plain-text tables shaped like the paper's Table 2 (strategies × Recall@k), with the Table 1
head/tail rows under each strategy, and the Figure 5 invalid-SID ratios; for logs and stdout.
The HTML report renders the same `eval_results` rows itself."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hourglass.evaluation.metrics import NDCG_KS, RECALL_KS

Row = tuple[str, str, str, str, int, float]  # run_id, strategy, subset, metric, k, value


def _index(rows: Iterable[Row]) -> dict[tuple[str, str, str, int], float]:
    return {(s, sub, m, k): v for _, s, sub, m, k, v in rows}


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}"


def _render(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths, strict=True)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in body)])


def results_table(rows: Iterable[Row], strategies: Sequence[str],
                  recall_ks: Sequence[int] = RECALL_KS, ndcg_ks: Sequence[int] = NDCG_KS,
                  subsets: Sequence[str] = ("head", "tail")) -> str:
    """One line per strategy (subset all) and indented head/tail lines where present."""
    idx = _index(rows)
    header = ["Method", "users", *(f"Recall@{k}" for k in recall_ks),
              *(f"NDCG@{k}" for k in ndcg_ks)]
    body = []
    for s in strategies:
        for sub in ("all", *subsets):
            if (s, sub, "users", 0) not in idx:
                continue
            label = s if sub == "all" else f"  {sub} token"
            users = idx[(s, sub, "users", 0)]
            body.append([label, str(int(users)),
                         *(_fmt(idx.get((s, sub, "recall", k))) for k in recall_ks),
                         *(_fmt(idx.get((s, sub, "ndcg", k))) for k in ndcg_ks)])
    return _render(header, body)


def invalid_table(rows: Iterable[Row], strategies: Sequence[str],
                  ks: Sequence[int] = RECALL_KS) -> str:
    """Share of invalid SIDs among the free decoder's top-k, per strategy (paper Fig. 5)."""
    idx = _index(rows)
    header = ["Method", *(f"invalid@{k}" for k in ks)]
    body = [[s, *(_fmt(idx.get((s, "all", "invalid_ratio", k))) for k in ks)]
            for s in strategies if any((s, "all", "invalid_ratio", k) in idx for k in ks)]
    return _render(header, body)

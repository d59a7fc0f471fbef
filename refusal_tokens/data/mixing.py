"""Classifier-driven data mixer and refusal-composition audit of SFT and preference datasets.

`classify_dataset` labels every row (comply = `respond`, or a refusal category) with a classifier or keeps the labels
already present; `refusal_composition` counts them; `mix_datasets` tags rows with their tokens and re-weights them to
target shares by seeded down- and up-sampling. Nothing is dropped silently: every removed row is counted with its
reason (`unparseable`, `empty response`, `over quota`).
"""

from __future__ import annotations

import os
import random
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..taxonomy import RESPOND_LABEL, RefusalTaxonomy, get_taxonomy
from ..utils.io import atomic_write_json
from ..utils.logging import get_logger
from .formats import LabelColumns, TaggingError, detect_format, prompt_and_response
from .tagging import as_label_columns, tag_dataset

DROP_COLUMN = "refusal_drop_reason"


@dataclass
class CompositionReport:
    """Counts and shares of each class before and after mixing, and every dropped row by reason.

    Args:
        columns (`list[str]`): `respond` then the categories.
        before (`dict[str, int]`): Class counts of the usable input rows.
        after (`dict[str, int]`): Class counts of the output (empty for an audit).
        dropped (`dict[str, int]`): Removed rows per reason.
        total_in (`int`): Rows read.
        side (`str`): Which response was classified: `response`, or `chosen` for preference data.
    """

    columns: list[str]
    before: dict[str, int]
    after: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    total_in: int = 0
    side: str = "response"

    @staticmethod
    def _shares(counts: Mapping[str, int]) -> dict[str, float]:
        n = sum(counts.values())
        return {k: (v / n if n else 0.0) for k, v in counts.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "total_in": self.total_in,
            "side": self.side,
            "before": {"counts": self.before, "shares": self._shares(self.before)},
            "after": {"counts": self.after, "shares": self._shares(self.after)} if self.after else None,
            "dropped": self.dropped,
        }

    def format(self) -> str:
        """The composition as an aligned text table."""
        b, a = self._shares(self.before), self._shares(self.after)
        head = f"{'class':<24} {'before':>8} {'share':>7}" + (f" {'after':>8} {'share':>7}" if self.after else "")
        lines = [head, "-" * len(head)]
        for c in self.columns:
            line = f"{c:<24} {self.before.get(c, 0):>8d} {b.get(c, 0.0):>7.3f}"
            if self.after:
                line += f" {self.after.get(c, 0):>8d} {a.get(c, 0.0):>7.3f}"
            lines.append(line)
        lines.append("-" * len(head))
        refused_before = sum(v for k, v in self.before.items() if k != RESPOND_LABEL)
        total_before = sum(self.before.values())
        lines.append(
            f"rows read {self.total_in}; usable {total_before}; refusals {refused_before} "
            f"({refused_before / total_before if total_before else 0:.3f}); classified side: {self.side}"
        )
        if self.dropped:
            lines.append("dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())))
        return "\n".join(lines)

    def save(self, output_dir: str, name: str = "composition") -> dict[str, str]:
        """Write `<name>.json` and, with matplotlib, `<name>.png` (bar chart of shares) to `output_dir`."""
        os.makedirs(output_dir, exist_ok=True)
        paths = {"json": atomic_write_json(os.path.join(output_dir, f"{name}.json"), self.to_dict())}
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return paths
        fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(self.columns)), 4))
        x = range(len(self.columns))
        b = self._shares(self.before)
        width = 0.4 if self.after else 0.8
        ax.bar([i - (width / 2 if self.after else 0) for i in x], [b.get(c, 0) for c in self.columns], width,
               label="before")  # fmt: skip
        if self.after:
            a = self._shares(self.after)
            ax.bar([i + width / 2 for i in x], [a.get(c, 0) for c in self.columns], width, label="after")
        ax.set_xticks(list(x))
        ax.set_xticklabels(self.columns, rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("share of rows")
        ax.set_title("Refusal composition")
        ax.legend()
        fig.tight_layout()
        paths["png"] = os.path.join(output_dir, f"{name}.png")
        tmp = paths["png"] + ".partial.png"
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, paths["png"])  # a cut run never leaves half a picture
        plt.close(fig)
        return paths


def _label_batch(
    batch: dict[str, list],
    indices: list[int],
    taxonomy: RefusalTaxonomy,
    classifier: Any,
    label_columns: LabelColumns,
) -> dict[str, list]:
    """Add label columns (one per side) and the drop-reason column to a batch."""
    n = len(indices)
    rows = [{k: batch[k][i] for k in batch} for i in range(n)]
    reasons: list[str | None] = [None] * n
    pairs: dict[str | None, list[tuple[str, str] | None]] = {}
    fmt = None
    for i, row in enumerate(rows):
        try:
            fmt = detect_format(row)
        except TaggingError:
            if "prompt" in row and "response" in row:  # a judged-answer set: read by prompt_and_response
                continue
            reasons[i] = "unparseable"
            continue
    sides = LabelColumns.sides(fmt) if fmt else (None,)
    for side in sides:
        pairs[side] = []
        for i, (row, idx) in enumerate(zip(rows, indices)):
            if reasons[i] is not None:
                pairs[side].append(None)
                continue
            try:
                p, r = prompt_and_response(row, side, idx)
            except (TaggingError, KeyError, TypeError):
                reasons[i] = "unparseable"
                pairs[side].append(None)
                continue
            if not r.strip():
                reasons[i] = "empty response"
                pairs[side].append(None)
                continue
            pairs[side].append((p, r))
    out = dict(batch)
    for side in sides:
        col = label_columns.for_side(side)
        labels: list[str | None] = [None] * n
        todo = [i for i in range(n) if reasons[i] is None]
        if col in batch:
            for i in todo:
                try:
                    labels[i] = taxonomy.normalize_label(batch[col][i])
                except (ValueError, KeyError):
                    reasons[i] = "unknown label"
        elif classifier is not None:
            got = (
                list(classifier([pairs[side][i][0] for i in todo], [pairs[side][i][1] for i in todo])) if todo else []
            )
            if len(got) != len(todo):
                raise TaggingError(f"the classifier returned {len(got)} labels for {len(todo)} rows.")
            for i, lab in zip(todo, got):
                try:
                    labels[i] = taxonomy.normalize_label(lab)
                except ValueError:
                    # A classifier that speaks another taxonomy mislabels every row: stop, rather than drop rows.
                    raise TaggingError(
                        f"row {indices[i]}: the classifier returned {lab!r}, which is not a label of taxonomy "
                        f"{taxonomy.name!r} ({[RESPOND_LABEL] + taxonomy.names}); use a classifier trained for this "
                        "taxonomy, or map its labels."
                    ) from None
        else:
            raise TaggingError(f"no label column {col!r} and no classifier: pass one of them.")
        out[col] = labels
    out[DROP_COLUMN] = reasons
    return out


def classify_dataset(
    dataset: Any,
    taxonomy: RefusalTaxonomy | str,
    classifier: Any = None,
    *,
    label_columns: LabelColumns | str | None = None,
    batch_size: int = 1000,
    num_proc: int | None = None,
) -> Any:
    """Add label columns (from a classifier, or normalised from existing columns) and a drop-reason column.

    Labels already present win over the classifier. Preference rows get `chosen_label` and `rejected_label`, each
    from its own response. Rows that cannot be read get `refusal_drop_reason` = `unparseable`, `empty response` or
    `unknown label` instead of an error, so they can be counted and removed (`mix_datasets`, `audit_dataset`).

    Args:
        dataset (`datasets.Dataset` or `IterableDataset`): Rows in a TRL format.
        taxonomy (`RefusalTaxonomy` or `str`): Taxonomy.
        classifier (`Callable`, *optional*): `(prompts, responses) -> labels`, e.g. a `RefusalClassifier`.
        label_columns (`LabelColumns` or `str`, *optional*): The label columns (see `tag_dataset`).
        batch_size (`int`, *optional*, defaults to 1000): Rows per `map` batch.
        num_proc (`int`, *optional*): Processes for `Dataset.map`.
    """
    taxonomy = get_taxonomy(taxonomy)
    columns = as_label_columns(label_columns)
    kwargs: dict[str, Any] = {
        "batched": True,
        "batch_size": batch_size,
        "with_indices": True,
        "fn_kwargs": {"taxonomy": taxonomy, "classifier": classifier, "label_columns": columns},
    }
    if type(dataset).__name__ == "Dataset":
        kwargs["desc"] = "Classifying responses"
        if num_proc:
            kwargs["num_proc"] = num_proc
    return dataset.map(_label_batch, **kwargs)


def _composition(
    labelled: Any, taxonomy: RefusalTaxonomy | str, columns: LabelColumns
) -> tuple[str, CompositionReport]:
    """The class column of classified rows (chosen responses for preference data) and their composition report."""
    cols = labelled.column_names or []
    col, side = (
        (columns.chosen, "chosen") if columns.chosen in cols and "chosen" in cols else (columns.label, "response")
    )
    report = refusal_composition(labelled[col], taxonomy, labelled[DROP_COLUMN])
    report.side = side
    return col, report


def refusal_composition(
    labels: Sequence[str | None], taxonomy: RefusalTaxonomy | str, drop_reasons: Sequence[str | None] = ()
) -> CompositionReport:
    """Count classes (and drop reasons) of already-labelled rows."""
    taxonomy = get_taxonomy(taxonomy)
    columns = [RESPOND_LABEL] + taxonomy.names
    reasons = list(drop_reasons) or [None] * len(labels)
    kept = Counter(lab for lab, why in zip(labels, reasons) if why is None)
    unknown = sorted(str(k) for k in kept if k not in columns)
    if unknown:  # every row is counted, as a class or as a drop: a label outside the taxonomy is a bug upstream
        raise ValueError(f"labels {unknown} are not classes of taxonomy {taxonomy.name!r} ({columns}).")
    return CompositionReport(
        columns=columns,
        before={c: kept.get(c, 0) for c in columns},
        dropped=dict(Counter(why for why in reasons if why is not None)),
        total_in=len(labels),
    )


def audit_dataset(
    dataset: Any,
    taxonomy: RefusalTaxonomy | str,
    classifier: Any = None,
    *,
    label_columns: LabelColumns | str | None = None,
    num_proc: int | None = None,
) -> CompositionReport:
    """The refusal composition of a dataset by category ("Cannot or Should Not?" ran this on public IFT/RLHF data).

    Preference datasets are audited on their chosen responses.
    """
    columns = as_label_columns(label_columns)
    labelled = classify_dataset(
        dataset,
        taxonomy,
        classifier,
        label_columns=columns,
        num_proc=num_proc,
    )
    return _composition(labelled, taxonomy, columns)[1]


def mix_datasets(
    datasets: Sequence[Any],
    taxonomy: RefusalTaxonomy | str,
    classifier: Any = None,
    *,
    targets: Mapping[str, float] | None = None,
    size: int | None = None,
    seed: int = 0,
    label_columns: LabelColumns | str | None = None,
    num_proc: int | None = None,
) -> tuple[Any, CompositionReport]:
    """Classify, tag and re-weight one or more datasets (all SFT formats, or all preference) to target shares.

    Args:
        datasets (`Sequence[datasets.Dataset]`): Sources in TRL formats; concatenated after labelling.
        taxonomy (`RefusalTaxonomy` or `str`): Taxonomy.
        classifier (`Callable`, *optional*): `(prompts, responses) -> labels` for rows without labels.
        targets (`Mapping[str, float]`, *optional*): Share per class (`respond` and categories), e.g.
            `{"respond": 0.8, "privacy": 0.02, ...}`; must cover every class present (give 0 to remove one) and sum
            to 1. Without targets the data is only tagged.
        size (`int`, *optional*): Output rows; defaults to the number of usable rows.
        seed (`int`, *optional*, defaults to 0): Sampling seed.
        num_proc (`int`, *optional*): Processes for classification and tagging.

    Returns:
        `(tagged dataset, CompositionReport)`; down-sampling removes rows (counted as `over quota`), up-sampling
        repeats rows.

    Raises:
        `ValueError`: for targets naming unknown classes, missing a present class, not summing to 1, or asking for
            a class with no rows.
    """
    import datasets as hf

    taxonomy = get_taxonomy(taxonomy)
    columns = as_label_columns(label_columns)
    labelled = [
        classify_dataset(
            d,
            taxonomy,
            classifier,
            label_columns=columns,
            num_proc=num_proc,
        )
        for d in datasets
    ]
    merged = hf.concatenate_datasets(labelled) if len(labelled) > 1 else labelled[0]
    col, report = _composition(merged, taxonomy, columns)
    usable = merged.filter(lambda r: r[DROP_COLUMN] is None, desc="Removing unusable rows")
    usable = usable.remove_columns([DROP_COLUMN])
    labels = usable[col]
    chosen = list(range(len(usable)))
    if targets is not None:
        chosen = _quota_indices(labels, report, dict(targets), size, seed)
    mixed = usable.select(chosen)
    tagged = tag_dataset(
        mixed,
        taxonomy,
        label_columns=columns,
        num_proc=num_proc,
    )
    after = Counter(tagged[col])
    report.after = {c: after.get(c, 0) for c in report.columns}
    return tagged, report


logger = get_logger(__name__)

MAX_REPEATS = 100
"""Most times a mix may repeat the rows of a class on average (a target share far above the data's: the output
would be that class's few rows copied over and over, which a training run memorises)."""


def _check_target_shares(targets: Mapping[str, float], columns: Sequence[str]) -> None:
    unknown = [c for c in targets if c not in columns]
    if unknown:
        raise ValueError(f"targets name unknown classes {unknown}; classes are {list(columns)}.")
    for c, share in targets.items():
        # bool is an int in Python; NaN fails every comparison, so it is named here rather than in the sum
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
            raise ValueError(f"targets[{c!r}]={share!r}: a share must be a number in [0, 1].")
    if abs(sum(targets.values()) - 1.0) > 1e-6:
        raise ValueError(f"target shares sum to {sum(targets.values()):.4f}; they must sum to 1.")


def _quota_indices(
    labels: list[str], report: CompositionReport, targets: dict[str, float], size: int | None, seed: int
) -> list[int]:
    _check_target_shares(targets, report.columns)
    present = [c for c, n in report.before.items() if n > 0]
    missing = [c for c in present if c not in targets]
    if missing:
        raise ValueError(f"targets must give a share for every class present; missing {missing} (use 0 to drop).")
    empty = [c for c, share in targets.items() if share > 0 and report.before.get(c, 0) == 0]
    if empty:
        raise ValueError(f"targets ask for classes with no rows: {empty}; add data for them or set their share to 0.")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"size={size!r}: the mix needs at least one output row (leave size out for as many rows as "
                         "the data has).")  # fmt: skip
    total = size if size is not None else sum(report.before.values())
    for c, share in targets.items():
        n = report.before.get(c, 0)
        if share > 0 and n and round(share * total) > MAX_REPEATS * n:
            raise ValueError(
                f"targets[{c!r}]={share} of {total} rows asks for {round(share * total)} {c!r} rows from {n}: each "
                f"repeated about {round(share * total) // n} times (more than {MAX_REPEATS}); lower its share or "
                "the size, or add data."
            )
        if share > 0 and n and round(share * total) > 10 * n:
            logger.warning("mix: %d %r rows from %d (each about %d times); a model memorises repeated rows",
                           round(share * total), c, n, round(share * total) // n)  # fmt: skip
    rng = random.Random(seed)
    by_class: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_class.setdefault(lab, []).append(i)
    out: list[int] = []
    over = 0
    for c, share in targets.items():
        pool = by_class.get(c, [])
        want = round(share * total)
        if want <= len(pool):
            picked = rng.sample(pool, want)
            over += len(pool) - want
        else:  # all rows once, then repeats drawn at random
            picked = pool + [rng.choice(pool) for _ in range(want - len(pool))]
        out.extend(picked)
    if over:
        report.dropped["over quota"] = report.dropped.get("over quota", 0) + over
    rng.shuffle(out)
    return out


def mix_streams(
    datasets: Sequence[Any],
    taxonomy: RefusalTaxonomy | str,
    classifier: Any = None,
    *,
    targets: Mapping[str, float],
    seed: int = 0,
    buffer_size: int = 10_000,
    label_columns: LabelColumns | str | None = None,
) -> tuple[Any, CompositionReport]:
    """`mix_datasets` for streaming `IterableDataset`s that do not fit in memory, in one pass.

    Sources are interleaved and labelled lazily. Each output row draws its class from `targets` (seeded) and takes
    the next row of that class, reading the source forward and holding rows of other classes in per-class buffers of
    at most `buffer_size`; the stream ends when a drawn class has no rows left. The report counts every row read
    (`before`), every unusable row by reason, rows that overflowed a buffer or were never used (`over quota`), and the
    output (`after`); it is complete once the result has been iterated to the end.

    Returns:
        `(tagged IterableDataset, CompositionReport)`.
    """
    import datasets as hf

    taxonomy = get_taxonomy(taxonomy)
    columns = as_label_columns(label_columns)
    classes_all = [RESPOND_LABEL] + taxonomy.names
    _check_target_shares(targets, classes_all)
    report = CompositionReport(
        columns=classes_all, before=dict.fromkeys(classes_all, 0), after=dict.fromkeys(classes_all, 0)
    )
    labelled = [
        classify_dataset(
            d,
            taxonomy,
            classifier,
            label_columns=columns,
        )
        for d in datasets
    ]
    source = hf.interleave_datasets(labelled, seed=seed) if len(labelled) > 1 else labelled[0]
    classes = [c for c, share in targets.items() if share > 0]
    weights = [targets[c] for c in classes]

    def generate():
        rng = random.Random(seed)
        buffers: dict[str, deque] = {c: deque() for c in classes_all}
        it = iter(source)
        exhausted = False

        def drop(reason: str, n: int = 1) -> None:
            report.dropped[reason] = report.dropped.get(reason, 0) + n

        while True:
            want = rng.choices(classes, weights)[0]
            while not buffers[want] and not exhausted:
                row = next(it, None)
                if row is None:
                    exhausted = True
                    break
                report.total_in += 1
                if row[DROP_COLUMN] is not None:
                    drop(row[DROP_COLUMN])
                    continue
                col = columns.chosen if "chosen" in row else columns.label
                lab = row[col]
                report.before[lab] = report.before.get(lab, 0) + 1
                if lab not in classes or len(buffers[lab]) >= buffer_size:
                    drop("over quota")
                    continue
                buffers[lab].append({k: v for k, v in row.items() if k != DROP_COLUMN})
            if not buffers[want]:
                drop("over quota", sum(len(b) for b in buffers.values()))
                return
            row = buffers[want].popleft()
            report.after[want] += 1
            yield row

    mixed = hf.IterableDataset.from_generator(generate)
    tagged = tag_dataset(
        mixed,
        taxonomy,
        label_columns=columns,
    )
    return tagged, report

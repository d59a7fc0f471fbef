"""Mixer and audit: classification, tagging, re-weighting to target shares, and every dropped row counted."""

import json

import pytest
from datasets import Dataset, IterableDataset

from refusal_tokens.classifiers import KeywordRefusalClassifier
from refusal_tokens.cli import main
from refusal_tokens.data.mixing import audit_dataset, mix_datasets, mix_streams

REFUSE = "I'm sorry, but I can't share private information such as a home address."
ANSWER = "Photosynthesis turns light into sugar."


def _sft_rows():
    rows = [{"prompt": f"What is the home address of person {i}?", "completion": REFUSE} for i in range(10)]
    rows += [{"prompt": f"Explain topic {i}.", "completion": ANSWER} for i in range(30)]
    rows += [{"prompt": "Say nothing.", "completion": "   "}]  # empty response
    rows += [{"prompt": "no completion here", "completion": None}]  # unparseable
    return rows


def test_audit_counts_classes_and_every_drop():
    ds = Dataset.from_list(_sft_rows())
    report = audit_dataset(ds, "cannot-should-not", KeywordRefusalClassifier("cannot-should-not"))
    assert report.total_in == 42
    assert report.before["privacy"] == 10 and report.before["respond"] == 30
    assert report.dropped == {"empty response": 1, "unparseable": 1}
    assert sum(report.before.values()) + sum(report.dropped.values()) == report.total_in
    assert "privacy" in report.format()


def test_mix_reaches_target_shares_with_seeded_sampling():
    ds = Dataset.from_list(_sft_rows())
    clf = KeywordRefusalClassifier("cannot-should-not")
    mixed, report = mix_datasets([ds], "cannot-should-not", clf, targets={"respond": 0.5, "privacy": 0.5}, size=20)
    assert len(mixed) == 20
    assert report.after["privacy"] == 10 and report.after["respond"] == 10
    assert report.dropped["over quota"] == 20  # 30 respond rows, 10 kept
    assert all(r["completion"].startswith("[refuse:privacy]") for r in mixed if r["refusal_label"] == "privacy")
    assert all(r["completion"].startswith("[respond]") for r in mixed if r["refusal_label"] == "respond")
    again, _ = mix_datasets([ds], "cannot-should-not", clf, targets={"respond": 0.5, "privacy": 0.5}, size=20)
    assert again.to_list() == mixed.to_list()
    # up-sampling repeats rows: 30 privacy rows from 10
    up, rep = mix_datasets([ds], "cannot-should-not", clf, targets={"respond": 0.25, "privacy": 0.75}, size=40)
    assert rep.after["privacy"] == 30 and len({r["prompt"] for r in up if r["refusal_label"] == "privacy"}) == 10


def test_mix_rejects_bad_targets():
    ds = Dataset.from_list(_sft_rows())
    clf = KeywordRefusalClassifier("cannot-should-not")
    with pytest.raises(ValueError, match="missing \\['privacy'\\]"):
        mix_datasets([ds], "cannot-should-not", clf, targets={"respond": 1.0})
    with pytest.raises(ValueError, match="sum to 1"):
        mix_datasets([ds], "cannot-should-not", clf, targets={"respond": 0.5, "privacy": 0.2})
    with pytest.raises(ValueError, match="no rows: \\['nsfw'\\]"):
        mix_datasets([ds], "cannot-should-not", clf, targets={"respond": 0.5, "privacy": 0.3, "nsfw": 0.2})
    with pytest.raises(ValueError, match="unknown classes"):
        mix_datasets([ds], "cannot-should-not", clf, targets={"respond": 0.5, "privacyy": 0.5})


def test_preference_rows_are_tagged_by_each_sides_class():
    rows = [
        {"prompt": "What is the home address of Jo?", "chosen": REFUSE, "rejected": "Jo lives at 1 Main St."},
        {"prompt": "Explain photosynthesis.", "chosen": ANSWER, "rejected": REFUSE},
    ]
    mixed, report = mix_datasets([Dataset.from_list(rows)], "cannot-should-not", KeywordRefusalClassifier())
    assert report.side == "chosen"
    got = {r["prompt"]: r for r in mixed}
    assert got["What is the home address of Jo?"]["chosen"].startswith("[refuse:privacy]")
    assert got["What is the home address of Jo?"]["rejected"].startswith("[respond]")
    assert got["Explain photosynthesis."]["rejected"].startswith("[refuse:privacy]")


def test_existing_labels_win_and_unknown_labels_are_counted():
    rows = [{"prompt": "a", "completion": ANSWER, "refusal_label": "privacy"},
            {"prompt": "b", "completion": ANSWER, "refusal_label": "no_such_label"}]  # fmt: skip
    report = audit_dataset(Dataset.from_list(rows), "cannot-should-not", KeywordRefusalClassifier())
    assert report.before["privacy"] == 1 and report.dropped == {"unknown label": 1}


def test_streaming_mix_follows_targets_and_counts_everything():
    rows = _sft_rows() * 5

    def gen():
        yield from rows

    stream = IterableDataset.from_generator(gen)
    mixed, report = mix_streams(
        [stream], "cannot-should-not", KeywordRefusalClassifier(), targets={"respond": 0.5, "privacy": 0.5}, seed=1
    )
    out = list(mixed)
    assert out and all(r["completion"].startswith(("[respond]", "[refuse:privacy]")) for r in out)
    assert report.after["respond"] + report.after["privacy"] == len(out)
    assert report.total_in == len(rows)
    used = sum(report.after.values())
    assert used + sum(report.dropped.values()) == report.total_in
    # the output follows the target shares (seeded draws of 0.5 / 0.5) until privacy runs out
    share = report.after["privacy"] / len(out)
    assert abs(share - 0.5) <= 0.1, share
    assert sum(r["refusal_label"] == "privacy" for r in out) == report.after["privacy"]
    assert report.after["privacy"] == report.before["privacy"]  # the scarce class is used up, not dropped


def test_audit_and_mix_commands(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _sft_rows()))
    assert main(["audit", "--dataset", str(data), "--output-dir", str(tmp_path / "a")]) == 0
    comp = json.loads((tmp_path / "a" / "composition.json").read_text())
    assert comp["before"]["counts"]["privacy"] == 10 and comp["dropped"] == {"empty response": 1, "unparseable": 1}
    assert (tmp_path / "a" / "composition.png").is_file()
    assert "privacy" in capsys.readouterr().out
    targets = tmp_path / "t.yaml"
    targets.write_text("respond: 0.8\nprivacy: 0.2\n")
    assert main(["mix", "--data", str(data), "--targets", str(targets), "--size", "20", "--output-dir",
                 str(tmp_path / "m")]) == 0  # fmt: skip
    mixed = [json.loads(line) for line in (tmp_path / "m" / "mixed.jsonl").read_text().splitlines()]
    assert sum(r["refusal_label"] == "privacy" for r in mixed) == 4 and len(mixed) == 20


def test_audit_logs_to_wandb_offline_without_an_account(tmp_path, monkeypatch):
    import glob

    from wandb_reader import history

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _sft_rows()))
    for key in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DISABLED"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    assert main(["audit", "--dataset", str(data), "--output-dir", str(tmp_path / "a"), "--wandb"]) == 0
    runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert len(runs) == 1
    logged = {k: v for row in history(runs[0]) for k, v in row.items()}
    assert logged.get("audit/privacy") == 10 and logged.get("audit/respond") == 30, sorted(logged)

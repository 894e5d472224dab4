"""Entity-level scoring: exact span and type, BMES and BIES read alike, broken tag runs yield nothing."""

import pytest

from scripts.training.metrics import Score, format_table, score_entities
from scripts.training.tags import Span, bies_labels, spans_from_tags, to_bies


def test_msra_bmes_tags_become_bies_labels():
    assert [to_bies(tag) for tag in ["O", "B-PER", "M-PER", "E-PER", "S-LOC"]] == [
        "O", "B-PER", "I-PER", "E-PER", "S-LOC",
    ]  # fmt: skip


def test_msra_nr_ns_nt_types_map_to_per_loc_org():
    assert [to_bies(tag) for tag in ["B-nr", "E-ns", "S-nt"]] == ["B-PER", "E-LOC", "S-ORG"]


@pytest.mark.parametrize("tag", ["B-XYZ", "Q-PER", "PER", ""])
def test_unknown_tags_are_rejected(tag):
    with pytest.raises(ValueError):
        to_bies(tag)


def test_label_set_is_o_then_bies_per_type():
    labels = bies_labels()
    assert labels[0] == "O" and len(labels) == 13 and len(set(labels)) == 13
    assert {"B-PER", "I-LOC", "E-ORG", "S-PER"} <= set(labels)


def test_spans_from_bmes_tags():
    #        李      强       在   北      京      会   见   联      合      国      秘
    tags = ["B-PER", "E-PER", "O", "B-LOC", "E-LOC", "O", "O", "B-ORG", "M-ORG", "E-ORG", "O"]
    assert spans_from_tags(tags) == [Span("PER", 0, 2), Span("LOC", 3, 5), Span("ORG", 7, 10)]


def test_single_character_entities():
    assert spans_from_tags(["S-LOC", "O", "S-PER"]) == [Span("LOC", 0, 1), Span("PER", 2, 3)]


def test_entity_at_the_end_of_the_sentence_is_kept():
    assert spans_from_tags(["O", "B-ORG", "I-ORG", "E-ORG"]) == [Span("ORG", 1, 4)]


@pytest.mark.parametrize(
    "tags",
    [
        ["B-PER", "O"],  # never ends
        ["B-PER"],  # cut off by the sentence end
        ["I-PER", "E-PER"],  # never begins
        ["E-LOC"],
        ["B-PER", "E-LOC"],  # type changes inside
        ["B-ORG", "I-LOC", "E-ORG"],
    ],
)
def test_broken_tag_runs_give_no_entity(tags):
    assert spans_from_tags(tags) == []


def test_a_new_begin_abandons_the_open_entity():
    assert spans_from_tags(["B-PER", "B-LOC", "E-LOC"]) == [Span("LOC", 1, 3)]


def test_perfect_prediction_scores_one():
    gold = [[Span("PER", 0, 2), Span("LOC", 3, 5)], [Span("ORG", 0, 4)]]
    scores = score_entities(gold, gold)
    assert all(score.f1 == 1.0 for score in scores.values())


def test_exact_span_and_type_are_both_required():
    gold = [[Span("PER", 0, 2), Span("LOC", 3, 5), Span("ORG", 6, 9)]]
    predicted = [[Span("PER", 0, 2), Span("LOC", 3, 6), Span("LOC", 6, 9)]]  # right, too long, wrong type
    scores = score_entities(gold, predicted)
    assert scores["ALL"] == Score(true_positives=1, predicted=3, gold=3)
    assert scores["ALL"].precision == pytest.approx(1 / 3)
    assert scores["ALL"].recall == pytest.approx(1 / 3)
    assert scores["PER"].f1 == 1.0
    assert scores["LOC"] == Score(true_positives=0, predicted=2, gold=1)
    assert scores["ORG"] == Score(true_positives=0, predicted=0, gold=1)


def test_precision_recall_f1_on_a_small_case():
    gold = [[Span("PER", 0, 2), Span("LOC", 5, 7)], [Span("LOC", 0, 2), Span("ORG", 3, 8)]]
    predicted = [[Span("PER", 0, 2)], [Span("LOC", 0, 2), Span("ORG", 3, 7), Span("PER", 9, 11)]]
    overall = score_entities(gold, predicted)["ALL"]
    assert (overall.true_positives, overall.predicted, overall.gold) == (2, 4, 4)
    assert overall.precision == 0.5 and overall.recall == 0.5 and overall.f1 == 0.5


def test_entities_are_matched_within_their_own_sentence():
    gold = [[Span("PER", 0, 2)], []]
    predicted = [[], [Span("PER", 0, 2)]]
    assert score_entities(gold, predicted)["ALL"].true_positives == 0


def test_duplicate_predictions_count_once():
    scores = score_entities([[Span("PER", 0, 2)]], [[Span("PER", 0, 2), Span("PER", 0, 2)]])
    assert scores["ALL"] == Score(true_positives=1, predicted=1, gold=1)


def test_nothing_predicted_and_nothing_gold_scores_zero_not_an_error():
    scores = score_entities([[]], [[]])
    assert scores["ALL"].f1 == 0.0 and scores["ALL"].precision == 0.0


def test_sentence_counts_must_match():
    with pytest.raises(ValueError):
        score_entities([[]], [[], []])


def test_table_has_a_row_per_type_and_all_last():
    rows = format_table(score_entities([[Span("PER", 0, 2)]], [[Span("PER", 0, 2)]])).splitlines()
    assert [row.split()[0] for row in rows] == ["type", "PER", "LOC", "ORG", "ALL"]
    assert rows[-1].split()[1:4] == ["1.0000", "1.0000", "1.0000"]

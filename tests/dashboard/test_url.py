"""ui.url: a link's values are checked before they reach a control; what is dropped is said in one sentence."""

import streamlit as st

from ui.url import _from_link, _text

MS, SL, NI, RA, TG = st.multiselect, st.slider, st.number_input, st.radio, st.toggle


def test_multiselect_keeps_known_choices_in_order_and_names_the_rest():
    value, sentence = _from_link("multiselect", "Models", ["resnet20", "nosuch", "plain20", "resnet20", ""],
                                 (["plain20", "resnet20"],), {}, "which is not a model here")
    assert value == ["resnet20", "plain20"]
    assert sentence == "The link asked for “nosuch” under “Models”, which is not a model here; it was left out."
    assert _from_link("multiselect", "Models", ["plain20"], (), {"options": ["plain20"]}, None) == (["plain20"], "")


def test_single_choices_match_the_options_as_the_url_writes_them():
    assert _from_link("radio", "Order (sorted)", ["b"], (["a", "b"],), {}, None) == ("b", "")
    assert _from_link("select_slider", "Images", ["500"], (), {"options": [100, 500, 1000]}, None) == (500, "")
    value, sentence = _from_link("radio", "Order (sorted)", ["z"], (["a", "b"],), {}, None)
    assert value is None and "“z” for “Order” is not among the choices" in sentence


def test_numbers_are_parsed_like_the_control_and_kept_in_range():
    assert _from_link("slider", "k", ["7"], (0, 20), {"value": 6}, None) == (7, "")
    assert _from_link("number_input", "Seed", ["5"], (), {"min_value": 0, "max_value": 10, "value": 0}, None) == (5, "")
    assert _from_link("slider", "λ", ["0.25"], (), {"min_value": 0.0, "max_value": 2.0, "value": 1.0}, None) == (0.25, "")
    for raw, words in (("999", "is outside 0–20"), ("2.5", "is not a whole number"), ("nan", "is not a number"),
                       ("abc", "is not a number"), ("-1", "is outside 0–20")):
        value, sentence = _from_link("slider", "k", [raw], (0, 20), {"value": 6}, None)
        assert value is None and words in sentence, (raw, sentence)


def test_switches_read_on_and_off():
    assert _from_link("toggle", "Run", ["1"], (), {}, None) == (True, "")
    assert _from_link("checkbox", "Run", ["false"], (), {}, None) == (False, "")
    value, sentence = _from_link("toggle", "Run", ["maybe"], (), {}, None)
    assert value is None and "neither on (1) nor off (0)" in sentence


def test_values_are_written_as_a_link_reads_them():
    for v in (True, False, 3, 0.5, 2.0, "sorted by magnitude"):
        assert _from_link({bool: "toggle", int: "slider", float: "slider", str: "radio"}[type(v)], "x", [_text(v)],
                          (["sorted by magnitude"],) if isinstance(v, str) else (),
                          {} if isinstance(v, (bool, str)) else {"min_value": 0, "max_value": 10, "value": v},
                          None)[0] == v

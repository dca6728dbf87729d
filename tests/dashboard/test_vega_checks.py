"""The chart rules of the browser test catch what they are meant to catch (each rule on a chart that breaks it and
on one that keeps it), on specs made by Altair as the pages make them."""

import altair as alt
import pandas as pd

from vega_checks import Chart, problems


def _chart(c: alt.Chart, df: pd.DataFrame) -> Chart:
    spec = c.to_dict()
    name = next(iter(spec.get("datasets", {})), None)
    return Chart(spec, {name: df} if name else {"": df})


DF = pd.DataFrame({"model": ["a", "a", "b", "b"], "block_index": [0, 1, 0, 1], "error_pct": [10.0, 20.0, 30.0, 40.0],
                   "state": ["trained", "init", "trained", "init"]})


def test_a_chart_in_words_with_legends_passes():
    c = alt.Chart(DF).mark_line().encode(x=alt.X("block_index:Q", title="block"),
                                         y=alt.Y("error_pct:Q", title="test error (%)", scale=alt.Scale(domain=[0, 100])),
                                         color="model:N", strokeDash="state:N")
    assert problems(_chart(c, DF)) == []


def test_each_rule_catches_its_defect():
    no_legend = alt.Chart(DF).mark_line().encode(x=alt.X("block_index:Q", title="block"),
                                                 y=alt.Y("error_pct:Q", title="error (%)"),
                                                 color=alt.Color("model:N", legend=None))
    assert problems(_chart(no_legend, DF)) == ["2 series of 'model' by color and no legend"]
    raw = alt.Chart(DF).mark_line().encode(x="block_index:Q", y=alt.Y("error_pct:Q", title="error (%)"), color="model:N")
    assert problems(_chart(raw, DF)) == ["x axis titled with the raw column name 'block_index'"]
    wide = alt.Chart(DF).mark_line().encode(x=alt.X("block_index:Q", title="block"), color="model:N",
                                            y=alt.Y("error_pct:Q", title="error (%)", scale=alt.Scale(domain=[-60, 160])))
    assert problems(_chart(wide, DF)) == ["y axis of 'error_pct' spans [-60, 160], outside 0-100 %"]
    band = DF.assign(error_low=DF["error_pct"] - 50, error_high=DF["error_pct"] + 70)
    c = alt.Chart(band).mark_area().encode(x=alt.X("block_index:Q", title="block"), color="model:N",
                                           y=alt.Y("error_low:Q", title="error (%)"), y2="error_high:Q")
    assert problems(_chart(c, band)) == ["y axis of 'error_low' draws values from -40 to 110"]


def test_a_layer_that_hides_a_shared_legend_is_caught_and_one_series_needs_none():
    """Seen on the Block deletion page: a baseline layer with ``legend=None`` made Vega-Lite drop the model legend
    that the points layer asked for."""
    base = alt.Chart(DF).encode(x=alt.X("block_index:Q", title="block"), y=alt.Y("error_pct:Q", title="error (%)"))
    layered = base.mark_line().encode(color="model:N") + base.mark_point().encode(color=alt.Color("model:N", legend=None))
    assert problems(_chart(layered, DF)) == ["2 series of 'model' by color and no legend (a layer hides it, and "
                                             "Vega-Lite then drops the legend it shares)"]
    both = base.mark_line().encode(color="model:N") + base.mark_point().encode(color="model:N")
    assert problems(_chart(both, DF)) == []
    one = DF[DF["model"] == "a"]
    c = alt.Chart(one).mark_line().encode(x=alt.X("block_index:Q", title="block"), y=alt.Y("error_pct:Q", title="e (%)"),
                                          color=alt.Color("model:N", legend=None))
    assert problems(_chart(c, one)) == []


def test_a_dash_legend_on_a_line_with_points_is_caught():
    """Seen on Gradient flow: a line mark with point=True draws the dash legend as point markers, without its dashes;
    ui.lines_with_points draws the points as a layer of their own."""
    enc = dict(x=alt.X("block_index:Q", title="block"), y=alt.Y("error_pct:Q", title="error (%)"), color="model:N",
               strokeDash="state:N")
    bad = alt.Chart(DF).mark_line(point=True).encode(**enc)
    assert problems(_chart(bad, DF)) == ["the dash legend of 'state' is drawn as point markers (a line with "
                                         "point=True): its line samples vanish"]
    good = alt.Chart(DF).mark_line().encode(**enc) + alt.Chart(DF).mark_point().encode(
        **{k: v for k, v in enc.items() if k != "strokeDash"})
    assert problems(_chart(good, DF)) == []

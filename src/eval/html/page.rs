//! `report.html` laid out from a [`ReportView`], one function per section of the page.
//!
//! maud's `html!` checks the markup when cambox is compiled and escapes every value it
//! inserts, so a file name or a truth label cannot break the page; only the page's own CSS
//! and script go in unescaped ([`PreEscaped`]). Everything shown is already in the view:
//! these functions only place it.
//!
//! SVG elements are written with an explicit end tag (`<line ...></line>`): inside `<svg>`
//! an HTML parser does not close a `<line>` start tag by itself, and the next element
//! would nest inside it.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::charts::{Histogram, Line, SweepChart};
use super::gallery::{Card, Gallery};
use super::view::{ClassTable, MetricsTable, ReportView, UnmatchedRow};

/// The per-class table's columns from this one on are numbers (right-aligned).
const FIRST_NUMERIC_COLUMN: usize = 3;

const CSS: PreEscaped<&str> = PreEscaped(
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1d2330;background:#fafbfc}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dde6;padding-bottom:4px}\
p.meta{margin:2px 0;color:#4a5568;font-size:13px}table{border-collapse:collapse;font-size:13px;background:#fff}\
td,th{border:1px solid #d8dde6;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eef1f5}\
td.v{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
.charts{display:flex;flex-wrap:wrap;gap:24px}.chart{background:#fff;border:1px solid #d8dde6;padding:8px}\
.gallery{display:flex;flex-wrap:wrap;gap:12px}.card{background:#fff;border:1px solid #d8dde6;padding:6px;width:330px}\
.card img{display:block;max-width:320px;margin:0 auto}.card .cap{font-size:12px;margin-top:4px;overflow-wrap:anywhere}\
.key{display:inline-block;width:12px;height:12px;vertical-align:middle;margin:0 4px 0 10px}.note{color:#8a4b00;font-size:13px}",
);

/// Shows only the gallery cards of the class chosen in the filter, or of the class named
/// in the page's fragment (`report.html#class=Nodule`), so a link can open the page
/// filtered. Inline, as everything in the page.
const FILTER_JS: PreEscaped<&str> = PreEscaped(
    "function camboxFilter(c){var n=0;document.querySelectorAll('.card').forEach(function(e){\
var on=(c==='*'||e.getAttribute('data-class')===c);e.style.display=on?'':'none';if(on)n++;});\
var s=document.getElementById('class-filter');if(s&&s.value!==c)s.value=c;\
var k=document.getElementById('shown');if(k)k.textContent=n;}\
function camboxFromHash(){var m=/class=([^&]*)/.exec(location.hash);camboxFilter(m?decodeURIComponent(m[1]):'*');}\
window.addEventListener('hashchange',camboxFromHash);document.addEventListener('DOMContentLoaded',camboxFromHash);",
);

/// The whole page, ending in a newline.
pub fn page(v: &ReportView) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "cambox eval: " (v.title) }
                style { (CSS) }
                script { (FILTER_JS) }
            }
            body {
                (header(v))
                @if let Some(t) = &v.per_class {
                    (class_table(t))
                }
                (metrics_table(&v.metrics))
                (charts(&v.histogram, v.sweep.as_ref()))
                (unmatched_table(&v.unmatched))
                (gallery(&v.gallery))
            }
        }
    };
    page.into_string() + "\n"
}

/// Heading, what was evaluated, and the evaluation's notes.
fn header(v: &ReportView) -> Markup {
    html! {
        h1 { (v.heading) }
        @for m in &v.meta {
            p class="meta" { (m) }
        }
        @for n in &v.notes {
            p class="note" { (n) }
        }
    }
}

fn class_table(t: &ClassTable) -> Markup {
    html! {
        h2 { "Per class" }
        table id="per-class" {
            tr {
                @for c in &t.head {
                    th { (c) }
                }
            }
            @for r in &t.rows {
                tr data-class=(r[0]) {
                    @for (i, c) in r.iter().enumerate() {
                        td class=[(i >= FIRST_NUMERIC_COLUMN).then_some("v")] { (c) }
                    }
                }
            }
        }
        @if let Some(u) = &t.unmapped {
            p class="note" { (u) }
        }
    }
}

fn metrics_table(m: &MetricsTable) -> Markup {
    html! {
        h2 { (m.title) }
        table {
            tr { th { "metric" } th { "value" } th { "detail" } }
            @for (metric, value, detail) in &m.rows {
                tr { td { (metric) } td class="v" { (value) } td { (detail) } }
            }
        }
    }
}

fn charts(h: &Histogram, sweep: Option<&SweepChart>) -> Markup {
    html! {
        h2 { "Distributions" }
        div class="charts" {
            div class="chart" {
                div { "Best IoU per image with truth (GT-known)" }
                (histogram_svg(h))
            }
            @if let Some(s) = sweep {
                div class="chart" {
                    div { "BoxAcc against the CAM threshold tau (dotted: calibrated tau)" }
                    (sweep_svg(s))
                }
            }
        }
    }
}

fn line(l: &Line, stroke: &str, dash: Option<&str>) -> Markup {
    html! {
        line x1=(l.x1) y1=(l.y1) x2=(l.x2) y2=(l.y2) stroke=(stroke) stroke-dasharray=[dash] {}
    }
}

fn histogram_svg(h: &Histogram) -> Markup {
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(h.width) height=(h.height) role="img" aria-label="IoU histogram" {
            (line(&h.axis, "#555", None))
            @for b in &h.bars {
                rect x=(b.x) y=(b.y) width=(b.width) height=(b.height) fill=(b.fill) {
                    title { (b.count.text) }
                }
                text x=(b.count.x) y=(b.count.y) font-size="11" text-anchor="middle" { (b.count.text) }
                text x=(b.bin.x) y=(b.bin.y) font-size="11" text-anchor="middle" { (b.bin.text) }
            }
            text x=(h.title.x) y=(h.title.y) font-size="11" text-anchor="middle" { (h.title.text) }
        }
    }
}

fn sweep_svg(c: &SweepChart) -> Markup {
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(c.width) height=(c.height) role="img"
            aria-label="BoxAcc against tau" {
            @for g in &c.grid {
                (line(&g.line, "#e3e6ec", None))
                text x=(g.y_label.x) y=(g.y_label.y) font-size="10" text-anchor="end" { (g.y_label.text) }
                text x=(g.x_label.x) y=(g.x_label.y) font-size="10" text-anchor="middle" { (g.x_label.text) }
            }
            @for k in &c.curves {
                polyline fill="none" stroke=(k.colour) stroke-width="1.8"
                    stroke-dasharray=[k.dashed.then_some("5,3")] points=(k.points) {}
                text x=(k.name.x) y=(k.name.y) font-size="11" fill=(k.colour) { (k.name.text) }
            }
            (line(&c.calibrated, "#999", Some("2,2")))
        }
    }
}

fn unmatched_table(rows: &[UnmatchedRow]) -> Markup {
    html! {
        h2 { "Unmatched files and annotation issues" }
        table {
            tr { th { "kind" } th { "count" } th { "examples" } }
            @for r in rows {
                tr { td { (r.kind) } td class="v" { (r.count) } td { (r.examples) } }
            }
        }
    }
}

/// The gallery: count, legend, the class filter (per label), the cards.
fn gallery(g: &Gallery) -> Markup {
    html! {
        h2 {
            "Gallery: " span id="shown" { (g.shown) } " of " (g.with_truth) " " (g.noun)
            " with truth, worst IoU first"
        }
        p class="meta" {
            span class="key" style=(g.truth_key) {}
            "truth"
            span class="key" style=(g.pred_key) {}
            "predicted"
            @if let Some(k) = &g.peak_key {
                span class="key" style=(k) {}
                "peak of the map (pointing game)"
            }
        }
        @if let Some(classes) = &g.filter {
            p class="meta" {
                label for="class-filter" { "class " }
                select id="class-filter" onchange="camboxFilter(this.value)" {
                    option value="*" { "all classes" }
                    @for c in classes {
                        option value=(c) { (c) }
                    }
                }
            }
        }
        div class="gallery" {
            @for c in &g.cards {
                (card(c))
            }
        }
    }
}

fn card(c: &Card) -> Markup {
    html! {
        div class="card" data-class=(c.class) {
            @if let Some(t) = &c.thumbnail {
                img alt=(c.alt) src=(t.data_url);
            }
            div class="cap" { (c.caption) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::html::charts::histogram;
    use crate::eval::html::thumbs::Thumbnail;

    fn view() -> ReportView {
        let card = |class: &str, caption: &str, thumbnail| Card {
            class: class.into(),
            alt: "a&b.png".into(),
            thumbnail,
            caption: caption.into(),
        };
        ReportView {
            title: "<cat>".into(),
            heading: "cambox eval".into(),
            meta: vec!["run: r".into()],
            notes: vec![],
            per_class: Some(ClassTable {
                head: vec!["class", "model classes", "pairs +/-", "CorLoc"],
                rows: vec![vec!["cat \"x\"".into(), "281".into(), "1 / 0".into(), "0.5000".into()]],
                unmapped: None,
            }),
            metrics: MetricsTable { title: "Metrics", rows: vec![("m".into(), "1".into(), "d".into())] },
            histogram: histogram(&[]),
            sweep: None,
            unmatched: vec![UnmatchedRow { kind: "k".into(), count: 2, examples: "x; y".into() }],
            gallery: Gallery {
                shown: 2,
                with_truth: 5,
                noun: "pairs",
                truth_key: "background:green".into(),
                pred_key: "background:red".into(),
                peak_key: None,
                filter: Some(vec!["cat \"x\"".into()]),
                cards: vec![
                    card(
                        "cat \"x\"",
                        "a <b>",
                        Some(Thumbnail { data_url: "data:image/jpeg;base64,AB+/".into(), source: "original" }),
                    ),
                    card("dog", "c (image not found)", None),
                ],
            },
        }
    }

    #[test]
    fn values_are_escaped_and_the_script_is_not() {
        let p = page(&view());
        assert!(p.starts_with(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>cambox eval: &lt;cat&gt;</title>"
        ));
        assert!(p.ends_with("</html>\n"));
        assert!(p.contains("<tr data-class=\"cat &quot;x&quot;\"><td>cat &quot;x&quot;</td><td>281</td><td>1 / 0</td><td class=\"v\">0.5000</td></tr>"));
        assert!(p.contains("<div class=\"cap\">a &lt;b&gt;</div>"));
        assert!(p.contains("<img alt=\"a&amp;b.png\" src=\"data:image/jpeg;base64,AB+/\">"));
        assert!(p.contains("c==='*'||e.getAttribute('data-class')===c"), "the script as written");
        assert!(p.contains("<option value=\"cat &quot;x&quot;\">cat &quot;x&quot;</option>"));
        assert!(p.contains("<h2>Gallery: <span id=\"shown\">2</span> of 5 pairs with truth, worst IoU first</h2>"));
    }

    #[test]
    fn svg_elements_are_closed_and_optional_parts_left_out() {
        let p = page(&view());
        assert_eq!(p.matches("<line ").count(), p.matches("</line>").count());
        assert_eq!(p.matches("<rect ").count(), 11);
        assert!(!p.contains("stroke-dasharray"), "no sweep chart, no dashed line");
        assert!(!p.contains("BoxAcc against tau"));
        let mut v = view();
        v.per_class = None;
        v.gallery.filter = None;
        let p = page(&v);
        assert!(!p.contains("per-class") && !p.contains("class-filter\""));
        assert!(p.contains("<div class=\"card\" data-class=\"dog\"><div class=\"cap\">c (image not found)</div></div>"));
    }
}

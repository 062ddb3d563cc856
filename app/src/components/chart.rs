//! A line chart drawn as SVG: it scales to its box, so it reads on a phone
//! as on a desktop. Labels are HTML around the drawing, so they never
//! stretch with it.

use leptos::prelude::*;

/// The drawing's own coordinates.
const W: f64 = 600.0;
const H: f64 = 140.0;

/// One series over `[since, until]` (milliseconds): each point's time and
/// value. A pause longer than `gap_ms` between two points (the node was
/// away) breaks the line. `max`: the top of the scale; the data's own
/// maximum (rounded up) when `None`.
#[component]
pub(crate) fn LineChart(
    title: String,
    unit: &'static str,
    points: Vec<(u64, f32)>,
    since: u64,
    until: u64,
    gap_ms: u64,
    #[prop(optional_no_strip)] max: Option<f32>,
) -> impl IntoView {
    let latest = points
        .last()
        .map(|(_, v)| format!("{} {unit}", round(*v)))
        .unwrap_or_else(|| "no data".into());
    let top = max
        .unwrap_or_else(|| nice(points.iter().map(|(_, v)| *v).fold(0.0, f32::max)))
        .max(f32::EPSILON);
    let span = until.saturating_sub(since).max(1) as f64;
    let xy = |t: u64, v: f32| {
        let x = (t.saturating_sub(since)) as f64 / span * W;
        let y = H - f64::from(v.clamp(0.0, top) / top) * (H - 4.0) - 2.0;
        format!("{x:.1},{y:.1}")
    };
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut last: Option<u64> = None;
    for &(t, v) in &points {
        if last.is_none_or(|l| t.saturating_sub(l) > gap_ms) {
            lines.push(Vec::new());
        }
        if let Some(line) = lines.last_mut() {
            line.push(xy(t, v));
        }
        last = Some(t);
    }
    let lines = lines
        .into_iter()
        .map(|l| {
            // A lone point still shows, as a dot.
            if l.len() == 1 {
                let (x, y) = l[0].split_once(',').unwrap_or(("0", "0"));
                view! { <circle cx=x.to_owned() cy=y.to_owned() r="2" /> }.into_any()
            } else {
                view! { <polyline points=l.join(" ") /> }.into_any()
            }
        })
        .collect_view();
    let label = format!("{title}: {latest}");
    let figure_label = label.clone();
    view! {
        <figure class="chart" aria-label=figure_label>
            <figcaption>
                <span>{title}</span>
                <strong>{latest}</strong>
            </figcaption>
            <div class="plot">
                <span class="y-top">{format!("{} {unit}", round(top))}</span>
                <svg
                    viewBox=format!("0 0 {W} {H}")
                    preserveAspectRatio="none"
                    role="img"
                    aria-label=label
                >
                    <line class="axis" x1="0" y1=H - 1.0 x2=W y2=H - 1.0 />
                    {lines}
                </svg>
            </div>
            <div class="x-axis">
                <span>{span_words(until.saturating_sub(since))}</span>
                <span>"now"</span>
            </div>
        </figure>
    }
}

fn round(v: f32) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A round number just above `v`, for the top of a scale.
fn nice(v: f32) -> f32 {
    if v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f32.powf(v.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= step * magnitude {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

fn span_words(ms: u64) -> String {
    let min = ms / 60_000;
    match min {
        0..=119 => format!("{min} min ago"),
        120..=2879 => format!("{} h ago", min / 60),
        _ => format!("{} d ago", min / 1440),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_end_on_round_numbers() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(7.3), 10.0);
        assert_eq!(nice(23.0), 25.0);
        assert_eq!(nice(100.0), 100.0);
        assert_eq!(nice(1234.0), 2000.0);
    }

    #[test]
    fn spans_read_in_words() {
        assert_eq!(span_words(3_600_000), "60 min ago");
        assert_eq!(span_words(24 * 3_600_000), "24 h ago");
        assert_eq!(span_words(7 * 24 * 3_600_000), "7 d ago");
    }
}

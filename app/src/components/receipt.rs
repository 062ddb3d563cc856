use leptos::prelude::*;
use wire::jobs::{cosine, verify_receipt, JobOutput, JobRecord};

use super::{short_id, JobStatusBadge};

/// A job's outcome: the output, what it cost, and its receipt, checked here
/// (in the browser after hydration) against the job's input and output.
#[component]
pub(crate) fn JobResult(record: JobRecord) -> impl IntoView {
    let verified = match (&record.output, &record.receipt) {
        (Some(output), Some(envelope)) => Some(verify_receipt(envelope, &record.terms(), output)),
        _ => None,
    };
    let output_view = record.output.as_ref().map(|o| match o {
        JobOutput::Embedding { dim, vectors } => {
            let similarity = (vectors.len() == 2).then(|| cosine(&vectors[0], &vectors[1]));
            let preview: Vec<String> = vectors
                .iter()
                .map(|v| {
                    let head: Vec<String> = v.iter().take(6).map(|x| format!("{x:.4}")).collect();
                    format!("[{}, …]", head.join(", "))
                })
                .collect();
            view! {
                <div class="output">
                    {similarity
                        .map(|s| {
                            view! {
                                <p class="similarity">
                                    "Cosine similarity: " <strong data-testid="similarity">{format!("{s:.4}")}</strong>
                                </p>
                            }
                        })}
                    <p>{format!("{} vectors of dimension {dim}", vectors.len())}</p>
                    <ul class="vectors mono">
                        {preview.into_iter().map(|p| view! { <li>{p}</li> }).collect_view()}
                    </ul>
                </div>
            }
            .into_any()
        }
        JobOutput::TextGeneration {
            text,
            finish_reason,
        } => view! {
            <div class="output">
                <pre class="generated" data-testid="generated">{text.clone()}</pre>
                <p class="muted">{format!("finished: {}", finish_reason.as_str())}</p>
            </div>
        }
        .into_any(),
        JobOutput::Tensor { outputs } => {
            let rows: Vec<String> = outputs
                .iter()
                .map(|t| {
                    let head = match &t.data {
                        wire::jobs::TensorData::F32(v) => {
                            v.iter().take(8).map(|x| format!("{x:.4}")).collect::<Vec<_>>()
                        }
                        wire::jobs::TensorData::I64(v) => {
                            v.iter().take(8).map(|x| x.to_string()).collect::<Vec<_>>()
                        }
                    };
                    format!("{} {}{:?}: [{}{}]", t.name, t.data.dtype(), t.shape, head.join(", "),
                        if t.data.len() > 8 { ", …" } else { "" })
                })
                .collect();
            view! {
                <div class="output">
                    <ul class="vectors mono" data-testid="tensors">
                        {rows.into_iter().map(|r| view! { <li>{r}</li> }).collect_view()}
                    </ul>
                </div>
            }
            .into_any()
        }
    });
    let receipt_view = verified.map(|v| match v {
        Ok(r) => view! {
            <div class="receipt" data-testid="receipt">
                <h3>"Receipt " <span class="badge online">"signature verified"</span></h3>
                <dl>
                    <dt>"Job"</dt>
                    <dd class="mono">{r.job_id.to_string()}</dd>
                    <dt>"Node"</dt>
                    <dd class="mono">{r.node_id.to_string()}</dd>
                    <dt>"Model hash"</dt>
                    <dd class="mono">{r.model_hash.to_string()}</dd>
                    <dt>"Input hash"</dt>
                    <dd class="mono">{r.input_hash.to_string()}</dd>
                    <dt>"Output hash"</dt>
                    <dd class="mono">{r.output_hash.to_string()}</dd>
                    <dt>"Price"</dt>
                    <dd>{r.price_msat.to_string()}</dd>
                    <dt>"Usage"</dt>
                    <dd>{format!("{} input tokens · {} output tokens · {} ms on the device", r.usage.input_tokens, r.usage.output_tokens, r.usage.device_ms)}</dd>
                    <dt>"Timings"</dt>
                    <dd>{format!("queue {} ms · compute {} ms · on {}", r.queue_ms, r.compute_ms, r.device)}</dd>
                </dl>
            </div>
        }
        .into_any(),
        Err(e) => view! {
            <div class="receipt bad" data-testid="receipt">
                <h3>"Receipt " <span class="badge offline">"invalid"</span></h3>
                <p>{e.to_string()}</p>
            </div>
        }
        .into_any(),
    });
    let error_view = record.error.as_ref().map(|e| {
        view! { <p class="error">{format!("{}: {}", e.error.code, e.error.message)}</p> }
    });
    let latency = record
        .finished_at
        .map(|f| format!("{} ms end to end", f.0.saturating_sub(record.created_at.0)));
    view! {
        <section class="job-result" data-testid="job-result">
            <p>
                <JobStatusBadge status=record.status />
                " " {record.model.clone()} " on "
                <a class="mono" href=format!("/node/{}", record.node_id)>
                    {short_id(&record.node_id.to_string())}
                </a> " · " {record.price_msat.to_string()} " · " {latency}
            </p>
            {error_view}
            {output_view}
            {receipt_view}
        </section>
    }
}

//! The raw-tensor task: named tensors in, named tensors out, for any
//! TorchScript module whose manifest describes its interface. Jobs run one
//! at a time: an arbitrary module cannot be assumed to batch.

use std::time::Instant;

use tch::{CModule, Device, IValue, Kind, Tensor};
use wire::jobs::{JobInput, JobOutput, NamedTensor, TensorData, Usage, MAX_TENSOR_OUTPUT_VALUES};
use wire::registry::ModelOffer;

use super::manifest::{ModelFiles, TensorSpec};
use super::queue::{gather, spawn_worker, Work};
use super::{elapsed_ms, EngineConfig, EngineError, Finished, LoadedModel};

struct TensorModel {
    module: CModule,
    device: Device,
    spec: TensorSpec,
}

impl TensorModel {
    /// The job's inputs in `forward`'s order, checked against the spec.
    fn inputs(&self, given: &[NamedTensor]) -> Result<Vec<IValue>, EngineError> {
        if given.len() != self.spec.inputs.len() {
            return Err(EngineError::BadInput(format!(
                "this model takes {} inputs ({}), got {}",
                self.spec.inputs.len(),
                self.spec
                    .inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                given.len()
            )));
        }
        self.spec
            .inputs
            .iter()
            .map(|want| {
                let t = given.iter().find(|t| t.name == want.name).ok_or_else(|| {
                    EngineError::BadInput(format!("input {} is missing", want.name))
                })?;
                if t.data.dtype() != want.dtype {
                    return Err(EngineError::BadInput(format!(
                        "input {} must be {}, got {}",
                        want.name,
                        want.dtype,
                        t.data.dtype()
                    )));
                }
                let fits = t.shape.len() == want.shape.len()
                    && t.shape
                        .iter()
                        .zip(&want.shape)
                        .all(|(&got, &w)| w == -1 || i64::try_from(got).is_ok_and(|g| g == w));
                if !fits {
                    return Err(EngineError::BadInput(format!(
                        "input {} must have shape {:?} (-1: any), got {:?}",
                        want.name, want.shape, t.shape
                    )));
                }
                let shape: Vec<i64> = t
                    .shape
                    .iter()
                    .map(|&d| i64::try_from(d).unwrap_or(i64::MAX))
                    .collect();
                let tensor = match &t.data {
                    TensorData::F32(v) => Tensor::f_from_slice(v)?,
                    TensorData::I64(v) => Tensor::f_from_slice(v)?,
                };
                Ok(IValue::Tensor(
                    tensor.f_view(shape.as_slice())?.f_to_device(self.device)?,
                ))
            })
            .collect()
    }

    /// Runs one job and answers it, unless it was cancelled or is late.
    fn answer(&self, work: Work) {
        let started = Instant::now();
        let Some(work) = work.keep(started) else {
            return;
        };
        let JobInput::Tensor { inputs } = &work.input else {
            work.fail(EngineError::WrongTask("embedding or text_generation"));
            return;
        };
        let result = self.run(inputs).map(|outputs| {
            let compute_ms = elapsed_ms(started);
            Finished {
                output: JobOutput::Tensor { outputs },
                usage: Usage {
                    input_tokens: 0,
                    output_tokens: 0,
                    device_ms: compute_ms,
                },
                queue_ms: u64::try_from(started.duration_since(work.enqueued).as_millis())
                    .unwrap_or(u64::MAX),
                compute_ms,
                tokens: Vec::new(),
                overtook: 0,
            }
        });
        let _ = work.reply.send(result);
    }

    fn run(&self, given: &[NamedTensor]) -> Result<Vec<NamedTensor>, EngineError> {
        let _no_grad = tch::no_grad_guard();
        let inputs = self.inputs(given)?;
        let out = self.module.forward_is(&inputs)?;
        let tensors = match out {
            IValue::Tensor(t) => vec![t],
            IValue::Tuple(items) | IValue::GenericList(items) => items
                .into_iter()
                .map(|i| match i {
                    IValue::Tensor(t) => Ok(t),
                    other => Err(EngineError::BadOutput(format!(
                        "a non-tensor output {other:?}"
                    ))),
                })
                .collect::<Result<_, _>>()?,
            other => return Err(EngineError::BadOutput(format!("{other:?}"))),
        };
        if tensors.len() != self.spec.outputs.len() {
            return Err(EngineError::BadOutput(format!(
                "{} outputs, the manifest names {}",
                tensors.len(),
                self.spec.outputs.len()
            )));
        }
        let total: i64 = tensors.iter().map(Tensor::numel).map(|n| n as i64).sum();
        if total as usize > MAX_TENSOR_OUTPUT_VALUES {
            return Err(EngineError::BadOutput(format!(
                "{total} output values; at most {MAX_TENSOR_OUTPUT_VALUES}"
            )));
        }
        tensors
            .into_iter()
            .zip(&self.spec.outputs)
            .map(|(t, name)| {
                let t = t.f_to_device(Device::Cpu)?.f_contiguous()?;
                let shape: Vec<u64> = t.size().iter().map(|&d| d.max(0) as u64).collect();
                let flat = t.f_view([-1])?;
                let data = match t.kind() {
                    Kind::Int64
                    | Kind::Int
                    | Kind::Int16
                    | Kind::Int8
                    | Kind::Uint8
                    | Kind::Bool => {
                        TensorData::I64(Vec::<i64>::try_from(&flat.f_to_kind(Kind::Int64)?)?)
                    }
                    _ => TensorData::F32(Vec::<f32>::try_from(&flat.f_to_kind(Kind::Float)?)?),
                };
                Ok(NamedTensor {
                    name: name.clone(),
                    shape,
                    data,
                })
            })
            .collect()
    }
}

/// Loads the model on its own thread and returns once it is ready.
pub(super) fn start(
    files: &ModelFiles,
    offer: ModelOffer,
    device: Device,
    config: &EngineConfig,
) -> Result<LoadedModel, EngineError> {
    let spec = files
        .manifest
        .tensor
        .clone()
        .ok_or(EngineError::WrongTask("tensor"))?;
    let path = files.model.clone();
    spawn_worker(
        format!("tensor-{}", files.manifest.name),
        config.queue_depth,
        move || {
            let mut module =
                CModule::load_on_device(&path, device).map_err(|e| EngineError::Load {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
            module.set_eval();
            let model = TensorModel {
                module,
                device,
                spec,
            };
            Ok((model, offer))
        },
        |model: TensorModel, rx| {
            let mut held = None;
            while let Some(batch) = gather(&rx, &mut held, 1, std::time::Duration::ZERO, |_| 1) {
                for work in batch {
                    model.answer(work);
                }
            }
        },
    )
}

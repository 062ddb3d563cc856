//! The raw-tensor task on `tensor-demo` (`scripts/export_tensor_demo.py`):
//! named tensors in, the module's exact answers out, bad names, shapes and
//! dtypes refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use node::engine::{DeviceChoice, Engine, EngineConfig, EngineError};
use wire::jobs::{JobInput, JobOutput, NamedTensor, TensorData};
use wire::MilliSats;

fn f32s(name: &str, shape: &[u64], values: &[f32]) -> NamedTensor {
    NamedTensor {
        name: name.into(),
        shape: shape.to_vec(),
        data: TensorData::F32(values.to_vec()),
    }
}

#[tokio::test]
async fn named_tensors_go_in_and_the_model_s_answers_come_out() {
    let root = crate::store_of("tensor", &["tensor-demo"]);
    let config = EngineConfig {
        device: DeviceChoice::Cpu,
        ..Default::default()
    };
    let engine = Arc::new(Engine::load(&root, config).unwrap());
    let model = engine.get(&engine.offers()[0].hash).await.unwrap();
    let run = |inputs: Vec<NamedTensor>| {
        let model = model.clone();
        async move {
            model
                .run(
                    JobInput::Tensor { inputs },
                    MilliSats(1000),
                    Instant::now() + Duration::from_secs(30),
                    None,
                )
                .await
        }
    };
    // Named, in any order.
    let done = run(vec![
        f32s("scale", &[1], &[2.0]),
        f32s("x", &[2, 4], &[3.0, 4.0, 0.0, 0.0, 1.0, 2.0, 2.0, 4.0]),
    ])
    .await
    .unwrap();
    let JobOutput::Tensor { outputs } = done.output else {
        panic!("not tensors");
    };
    assert_eq!(outputs[0], f32s("y", &[2, 2], &[3.5, 3.0, 1.5, 3.0]));
    assert_eq!(outputs[1], f32s("norm", &[2], &[10.0, 10.0]));

    for bad in [
        vec![f32s("x", &[2, 4], &[0.0; 8])],
        vec![f32s("x", &[2, 3], &[0.0; 6]), f32s("scale", &[1], &[1.0])],
        vec![f32s("x", &[1, 4], &[0.0; 4]), f32s("gain", &[1], &[1.0])],
        vec![
            NamedTensor {
                name: "x".into(),
                shape: vec![1, 4],
                data: TensorData::I64(vec![0; 4]),
            },
            f32s("scale", &[1], &[1.0]),
        ],
    ] {
        let got = run(bad.clone()).await;
        assert!(
            matches!(got, Err(EngineError::BadInput(_))),
            "{bad:?}: {got:?}"
        );
    }
}

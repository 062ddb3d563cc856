//! Jobs: what a consumer submits (`input`), what comes back (`output`), the
//! frames of the job protocol that carry them (`stream`), the receipt the
//! node signs (`receipt`), and the server's record of a job (`record`).
//! Prices live in [`crate::pricing`].

mod input;
mod output;
mod receipt;
mod record;
mod stream;

pub use input::*;
pub use output::*;
pub use receipt::*;
pub use record::*;
pub use stream::*;

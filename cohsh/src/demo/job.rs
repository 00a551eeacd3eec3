//! The demo's GPU job: a `vadd` of two 8-element vectors, as the job
//! descriptor a GPU worker appends to `/gpu/<id>/job` (inline payload, its
//! SHA-256 and length), and the sums the worker checks the result against.
//!
//! The descriptor is a golden value: `cohsh` links no SHA-256 or base64 of
//! its own, so the text is fixed here and a unit test rebuilds it with
//! `gpu-bridge`'s `JobDescriptor::inline` (the one implementation of the
//! schema), failing if the two ever differ.

/// The job's id in status lines.
pub const JOB_ID: &str = "demo-vadd";

/// The first vector.
pub const A: [f32; 8] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];

/// The second vector.
pub const B: [f32; 8] = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0];

/// The descriptor, one line of JSON: `JobDescriptor::inline(JOB_ID, vadd A B)`.
pub const DESCRIPTOR: &str = concat!(
    r#"{"job_id":"demo-vadd","kernel":"vadd","grid":[1,1,1],"block":[256,1,1],"#,
    r#""bytes_hash":"f1a7467e86f94c1728053db647a473503e989ef47764d8eaa3e1f008bd91d5fd","#,
    r#""payload_b64":"eyJhIjpbMS4wLDIuMCwzLjAsNC4wLDUuMCw2LjAsNy4wLDguMF0sImIiOlsxMC4wLDIwLjAsMzAu"#,
    r#"MCw0MC4wLDUwLjAsNjAuMCw3MC4wLDgwLjBdfQ==","#,
    r#""bytes_len":85,"priority":0,"timeout_ms":10000,"mem_mb":1,"streams":1}"#,
);

/// The sums a correct GPU returns: `A[i] + B[i]`.
pub fn expected() -> Vec<f32> {
    A.iter().zip(B).map(|(a, b)| a + b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpu_bridge::{JobDescriptor, Workload};

    #[test]
    fn the_descriptor_is_what_gpu_bridge_builds() {
        let workload = Workload::Vadd {
            a: A.to_vec(),
            b: B.to_vec(),
        };
        assert_eq!(
            DESCRIPTOR,
            JobDescriptor::inline(JOB_ID, &workload).to_json()
        );
    }
}

//! `raygent k8s manifest`: a job's shards as a Kubernetes Indexed Job.

use std::fmt::Write as _;

use anyhow::anyhow;

use crate::cli::{K8sAction, K8sArgs, ManifestArgs};
use crate::slurm::{default_name, parse_run_args};
use crate::{Failure, exit};

/// `raygent k8s`.
pub fn k8s(args: K8sArgs) -> Result<u8, Failure> {
    match args.action {
        K8sAction::Manifest(a) => manifest(a),
    }
}

/// `s` as a YAML scalar: JSON's double-quoted string is one.
fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The Indexed Job's YAML.
pub fn render(a: &ManifestArgs, output: &str) -> String {
    let name = a.name.clone().unwrap_or_else(|| default_name(output));
    let parallelism = a.parallelism.unwrap_or(a.shards).clamp(1, a.shards.max(1));
    let mut command = vec![
        a.raygent.clone(),
        "run".into(),
        "--shards".into(),
        a.shards.to_string(),
    ];
    command.extend(a.run_args.iter().cloned());
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# Written by `raygent k8s manifest` for the job at {output}: {} shards.\n\
         # Each pod runs shard JOB_COMPLETION_INDEX (set by Kubernetes) of the same command.\n\
         # Apply with: kubectl apply -f THIS_FILE",
        a.shards
    );
    let _ = writeln!(y, "apiVersion: batch/v1");
    let _ = writeln!(y, "kind: Job");
    let _ = writeln!(y, "metadata:");
    let _ = writeln!(y, "  name: {}", quoted(&name));
    let _ = writeln!(y, "  labels:");
    let _ = writeln!(y, "    app.kubernetes.io/name: raygent");
    let _ = writeln!(y, "spec:");
    let _ = writeln!(y, "  completionMode: Indexed");
    let _ = writeln!(y, "  completions: {}", a.shards);
    let _ = writeln!(y, "  parallelism: {parallelism}");
    let _ = writeln!(y, "  backoffLimitPerIndex: {}", a.backoff_limit_per_index);
    let _ = writeln!(y, "  podFailurePolicy:");
    let _ = writeln!(y, "    rules:");
    let _ = writeln!(
        y,
        "    # Exit code 2 is bad usage or bad input: a retry would fail the same way."
    );
    let _ = writeln!(y, "    - action: FailIndex");
    let _ = writeln!(y, "      onExitCodes:");
    let _ = writeln!(y, "        containerName: raygent");
    let _ = writeln!(y, "        operator: In");
    let _ = writeln!(y, "        values: [2]");
    let _ = writeln!(
        y,
        "    # An eviction, a preemption or a node drain: the shard resumes in a new pod."
    );
    let _ = writeln!(y, "    - action: Ignore");
    let _ = writeln!(y, "      onPodConditions:");
    let _ = writeln!(y, "      - type: DisruptionTarget");
    let _ = writeln!(y, "  template:");
    let _ = writeln!(y, "    metadata:");
    let _ = writeln!(y, "      labels:");
    let _ = writeln!(y, "        app.kubernetes.io/name: raygent");
    let _ = writeln!(y, "    spec:");
    let _ = writeln!(y, "      restartPolicy: Never");
    let _ = writeln!(y, "      containers:");
    let _ = writeln!(y, "      - name: raygent");
    let _ = writeln!(y, "        image: {}", quoted(&a.image));
    let _ = writeln!(y, "        command:");
    for c in &command {
        let _ = writeln!(y, "        - {}", quoted(c));
    }
    let _ = writeln!(
        y,
        "        # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, ..."
    );
    let _ = writeln!(y, "        envFrom:");
    let _ = writeln!(y, "        - secretRef:");
    let _ = writeln!(y, "            name: {}", quoted(&a.aws_secret));
    y
}

fn manifest(a: ManifestArgs) -> Result<u8, Failure> {
    if a.parallelism == Some(0) {
        return Err(Failure::usage(anyhow!("--parallelism must be at least 1")));
    }
    let run = parse_run_args(&a.run_args)?;
    raygent_actors::Shard::new(0, a.shards).map_err(Failure::usage)?;
    // Only printed: nothing here needs to reach the input or the output.
    if run.input.is_empty() || run.input.iter().any(|i| i == "-") {
        return Err(Failure::usage(anyhow!(
            "stdin cannot be shared out among shards: give -i a file or an S3 object"
        )));
    }
    print!("{}", render(&a, &run.output));
    Ok(exit::DONE)
}

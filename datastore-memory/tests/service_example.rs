//! How a service tests its own logic against the store traits: with a mockall
//! mock where the exact calls matter, and with the in-memory store as a fake
//! where behaviour matters.

use datastore_core::{
    Error, Kind, MockRunStore, Precondition, Run, RunStatus, RunStore, StepRun, StoreName,
    Versioned, Workflow, WorkflowId,
};

/// What the (example) scheduler service decided.
#[derive(Debug, PartialEq)]
enum Decision {
    /// A new run was created with this number.
    Started(u64),
    /// The latest run is still going; nothing was created.
    Busy(u64),
}

/// Service logic: start a new run of a workflow unless its latest run is
/// still waiting or running. Takes the trait object, as services do.
async fn start_if_idle(runs: &dyn RunStore, workflow: &WorkflowId) -> Result<Decision, Error> {
    let steps = match runs.latest(workflow).await {
        Ok(latest) if !latest.value.status.is_finished() => {
            return Ok(Decision::Busy(latest.value.number));
        }
        Ok(latest) => latest
            .value
            .steps
            .iter()
            .map(|s| StepRun::new(s.name.clone(), s.category.clone()))
            .collect(),
        Err(Error::NotFound { .. }) => vec![StepRun::new("run", "transform")],
        Err(e) => return Err(e),
    };
    let created = runs.create(Run::new(workflow.clone(), steps)).await?;
    Ok(Decision::Started(created.value.number))
}

fn versioned(run: Run) -> Versioned<Run> {
    Versioned {
        value: run,
        revision: datastore_core::Revision::new(1),
        created: chrono::Utc::now(),
        updated: chrono::Utc::now(),
        actor: None,
    }
}

#[tokio::test]
async fn busy_workflow_creates_nothing() {
    let mut runs = MockRunStore::new();
    runs.expect_latest().returning(|w| {
        let mut r = Run::new(w.clone(), vec![]);
        r.number = 4;
        r.status = RunStatus::Running;
        Ok(versioned(r))
    });
    runs.expect_create().never();
    let decision = start_if_idle(&runs, &WorkflowId::new("w1")).await.unwrap();
    assert_eq!(decision, Decision::Busy(4));
}

#[tokio::test]
async fn finished_workflow_starts_a_run_with_the_same_steps() {
    let mut runs = MockRunStore::new();
    runs.expect_latest().returning(|w| {
        let mut r = Run::new(w.clone(), vec![StepRun::new("fetch", "download")]);
        r.number = 2;
        r.status = RunStatus::Failed;
        Ok(versioned(r))
    });
    runs.expect_create()
        .withf(|run| {
            run.steps.len() == 1 && run.steps[0].name == "fetch" && run.steps[0].output.is_empty()
        })
        .times(1)
        .returning(|mut run| {
            run.number = 3;
            Ok(versioned(run))
        });
    let decision = start_if_idle(&runs, &WorkflowId::new("w1")).await.unwrap();
    assert_eq!(decision, Decision::Started(3));
}

#[tokio::test]
async fn store_errors_reach_the_caller() {
    let mut runs = MockRunStore::new();
    runs.expect_latest().returning(|w| {
        Err(Error::Unavailable {
            store: StoreName::Kind(Kind::Run),
            key: w.to_string(),
            source: "connection refused".into(),
        })
    });
    runs.expect_create().never();
    let err = start_if_idle(&runs, &WorkflowId::new("w1"))
        .await
        .unwrap_err();
    assert!(err.is_retryable());
}

#[tokio::test]
async fn same_logic_against_the_memory_fake() {
    let ds = datastore_memory::open();
    let w = ds
        .workflows()
        .put(
            Workflow::new("init-1", "owner-1"),
            Precondition::MustNotExist,
        )
        .await
        .unwrap();
    let id = w.value.id;
    assert_eq!(
        start_if_idle(ds.runs(), &id).await.unwrap(),
        Decision::Started(1)
    );
    assert_eq!(
        start_if_idle(ds.runs(), &id).await.unwrap(),
        Decision::Busy(1)
    );
    let latest = ds.runs().latest(&id).await.unwrap();
    let mut done = latest.value.clone();
    done.status = RunStatus::Succeeded;
    ds.runs().put(done, latest.expect()).await.unwrap();
    assert_eq!(
        start_if_idle(ds.runs(), &id).await.unwrap(),
        Decision::Started(2)
    );
}

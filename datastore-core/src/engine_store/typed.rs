//! What each typed substore adds to the record path: profiles by
//! username and rename, workflows by dataset, run numbers and events, keys
//! by profile, collection patches.

use async_trait::async_trait;

use crate::engine::{Engine, Mutation, Scan};
use crate::error::{Error, FieldError, Result, StoreName};
use crate::ids::{InitId, ProfileId, RecordId, RunId, WorkflowId};
use crate::query::{
    Direction, Page, PageRequest, Position, check_limit, decode_cursor, encode_cursor,
    query_fingerprint,
};
use crate::record::{IndexValue, Kind};
use crate::records::{
    CollectionEntry, CollectionFilter, CollectionPatch, Profile, Run, RunEvent, RunStatus, Workflow,
};
use crate::revision::{Precondition, Versioned};
use crate::stores::{CollectionStore, KeyStore, ProfileStore, Renamed, RunStore, WorkflowStore};

use super::{EngineStore, retry_on_contention};

#[async_trait]
impl<E: Engine> ProfileStore for EngineStore<E> {
    async fn get_by_username(&self, username: &str) -> Result<Versioned<Profile>> {
        if username.is_empty() {
            return Err(Error::invalid(
                StoreName::Kind(Kind::Profile),
                username,
                "username",
                "must not be empty",
            ));
        }
        self.first_by_index(
            "username",
            vec![IndexValue::str(username)],
            Direction::Asc,
            username,
        )
        .await
    }

    async fn rename(
        &self,
        id: &ProfileId,
        username: &str,
        precondition: Precondition,
    ) -> Result<Renamed> {
        if precondition == Precondition::MustNotExist {
            return Err(Error::invalid(
                StoreName::Kind(Kind::Profile),
                id.as_str(),
                "precondition",
                "must-not-exist makes no sense for a rename",
            ));
        }
        Ok(retry_on_contention!(
            StoreName::Kind(Kind::Profile),
            id.as_str(),
            "renaming the profile",
            {
                let current: Versioned<Profile> = self.get_record(id).await?;
                if let Precondition::MustBeAt(want) = precondition
                    && current.revision != want
                {
                    return Err(Error::Conflict {
                        store: StoreName::Kind(Kind::Profile),
                        key: id.to_string(),
                        expected: precondition,
                        found: Some(current.revision),
                    });
                }
                let old = current.value.username.clone();
                let mut renamed = current.value.clone();
                renamed.username = username.to_string();
                let mut prepared =
                    self.prepare_put(&mut renamed, Precondition::MustBeAt(current.revision))?;
                let mut mutations = std::mem::take(&mut prepared.mutations);
                let mut entries = Vec::new();
                if old != username {
                    entries = self
                        .all_records::<CollectionEntry>(CollectionFilter::Username(old))
                        .await?;
                    for entry in &mut entries {
                        entry.value.username = username.to_string();
                        let expect = entry.expect();
                        mutations
                            .append(&mut self.prepare_put(&mut entry.value, expect)?.mutations);
                    }
                }
                let committed = match self.commit(mutations, &[]).await {
                    Err(Error::Conflict { .. } | Error::NotFound { .. }) => continue,
                    other => other?,
                };
                let mut written = committed.into_iter();
                let profile =
                    Self::versioned(renamed, prepared.key, written.by_ref().take(1).collect())?;
                let entries = entries
                    .into_iter()
                    .zip(written)
                    .map(|(e, c)| Versioned::from_committed(e.value, &c))
                    .collect();
                Some(Renamed { profile, entries })
            }
        ))
    }
}

#[async_trait]
impl<E: Engine> WorkflowStore for EngineStore<E> {
    async fn get_by_init_id(&self, init_id: &InitId) -> Result<Versioned<Workflow>> {
        init_id
            .check("init_id")
            .map_err(|e| e.into_error(StoreName::Kind(Kind::Workflow), init_id.as_str()))?;
        self.first_by_index(
            "init_id",
            vec![IndexValue::str(init_id.as_str())],
            Direction::Asc,
            init_id.as_str(),
        )
        .await
    }
}

#[async_trait]
impl<E: Engine> RunStore for EngineStore<E> {
    async fn create(&self, mut run: Run) -> Result<Versioned<Run>> {
        run.workflow_id
            .check("workflow_id")
            .map_err(|e| e.into_error(StoreName::Kind(Kind::Run), run.id.as_str()))?;
        // The workflow (for its owner) and its run count are read together:
        // one statement on SQL (one round trip, one hop to SQLite's
        // connection thread), side by side elsewhere. The
        // mark taken before them lets an engine that has written nothing
        // since skip reading them again to check the commit.
        let mark = self.engine.read_mark();
        // Only the owner is kept: the rest of the workflow is dropped as it
        // is decoded, not carried in the future's state across the commit.
        let mut owner = None;
        let count = self
            .engine
            .get_with_counter(
                Kind::Workflow,
                &run.workflow_id.key(),
                &Run::counter_name(&run.workflow_id),
                &mut |stored| {
                    owner = Some(Self::decode_ref::<Workflow>(stored)?.value.owner_id);
                    Ok(())
                },
            )
            .await;
        run.owner_id = match owner {
            Some(owner) => owner,
            None => {
                count?;
                return Err(Error::invalid(
                    StoreName::Kind(Kind::Run),
                    run.id.as_str(),
                    "workflow_id",
                    format!("no workflow record with id {:?}", run.workflow_id.as_str()),
                ));
            }
        };
        if run.id.is_empty() {
            run.id = RunId::generate();
        }
        let workflow_id = run.workflow_id.as_str().to_owned();
        let mut read = Some(count?);
        let committed = retry_on_contention!(
            StoreName::Kind(Kind::Run),
            &workflow_id,
            "assigning a run number",
            {
                // A retry reads the count again.
                let (count, counted_at) = match read.take() {
                    Some(count) => (count, mark),
                    None => {
                        let at = self.engine.read_mark();
                        let counter = Run::counter_name(&run.workflow_id);
                        (self.engine.counter(&counter).await?, at)
                    }
                };
                run.number = count + 1;
                let mut prepared = self.prepare_put(&mut run, Precondition::MustNotExist)?;
                for m in &mut prepared.mutations {
                    match m {
                        Mutation::Require(r)
                            if r.kind == Kind::Workflow && r.key == workflow_id =>
                        {
                            r.seen_at = mark;
                        }
                        // The run's one counter: its workflow's run count.
                        Mutation::RaiseCounter(c) => c.seen_at = counted_at,
                        _ => {}
                    }
                }
                let refs: Vec<_> = prepared
                    .references
                    .into_iter()
                    .map(|r| (StoreName::Kind(Kind::Run), prepared.key.clone(), r))
                    .collect();
                match self.commit(prepared.mutations, &refs).await {
                    // Another create took this number first: take the next one.
                    Err(Error::AlreadyExists {
                        store: StoreName::Kind(Kind::Run),
                        key,
                    }) if key != run.id.as_str() => None,
                    other => Some(other?),
                }
            }
        );
        let key = run.id.as_str().to_owned();
        Self::versioned(run, key, committed)
    }

    async fn latest(&self, workflow: &WorkflowId) -> Result<Versioned<Run>> {
        workflow
            .check("workflow_id")
            .map_err(|e| e.into_error(StoreName::Kind(Kind::Run), workflow.as_str()))?;
        self.first_by_index(
            "workflow_number",
            vec![IndexValue::str(workflow.as_str())],
            Direction::Desc,
            workflow.as_str(),
        )
        .await
    }

    async fn count(&self, workflow: &WorkflowId) -> Result<u64> {
        workflow
            .check("workflow_id")
            .map_err(|e| e.into_error(StoreName::Kind(Kind::Run), workflow.as_str()))?;
        self.engine
            .count(
                Kind::Run,
                "workflow_number",
                &[IndexValue::str(workflow.as_str())],
            )
            .await
    }

    async fn list_latest_by_status(
        &self,
        status: RunStatus,
        page: PageRequest,
    ) -> Result<Page<Versioned<Run>>> {
        /// Workflows read per scan.
        const WORKFLOWS_PER_SCAN: usize = 100;
        let cursor_key = page
            .cursor
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let invalid = |e: FieldError| e.into_error(StoreName::Kind(Kind::Run), cursor_key.clone());
        check_limit(page.limit).map_err(invalid)?;
        // Cursors of this list are positions among workflows, told apart
        // from other lists' by a plan of their own.
        let plan =
            crate::record::Plan::index("latest_by_status", vec![IndexValue::str(status.as_str())]);
        let fingerprint = query_fingerprint(Kind::Run, &plan, Direction::Asc);
        let mut after = match &page.cursor {
            Some(c) => Some(decode_cursor(c, fingerprint).map_err(invalid)?),
            None => None,
        };
        let mut items = Vec::new();
        loop {
            let scan = Scan {
                index: None,
                prefix: Vec::new(),
                after: after.clone(),
                direction: Direction::Asc,
                limit: WORKFLOWS_PER_SCAN,
            };
            let workflows = self.engine.scan(Kind::Workflow, &scan).await?;
            let exhausted = workflows.len() < WORKFLOWS_PER_SCAN;
            for w in workflows {
                let latest = Scan {
                    index: Some("workflow_number"),
                    prefix: vec![IndexValue::str(w.key.as_str())],
                    after: None,
                    direction: Direction::Desc,
                    limit: 1,
                };
                after = Some(Position {
                    values: Vec::new(),
                    id: w.key,
                });
                if let Some(run) = self.engine.scan(Kind::Run, &latest).await?.pop() {
                    let run: Versioned<Run> = Self::decode(run)?;
                    if run.value.status == status {
                        items.push(run);
                        if items.len() == page.limit as usize {
                            let at = after.as_ref().expect("set above");
                            return Ok(Page {
                                items,
                                next: Some(encode_cursor(fingerprint, at)),
                            });
                        }
                    }
                }
            }
            if exhausted {
                return Ok(Page { items, next: None });
            }
        }
    }

    async fn append_event(
        &self,
        run: &RunId,
        step: usize,
        event: RunEvent,
    ) -> Result<Versioned<Run>> {
        Ok(retry_on_contention!(
            StoreName::Kind(Kind::Run),
            run.as_str(),
            "appending an event",
            {
                let mut current: Versioned<Run> = self.get_record(run).await?;
                if current.value.status.is_finished() {
                    return Err(Error::invalid(
                        StoreName::Kind(Kind::Run),
                        run.as_str(),
                        "status",
                        format!(
                            "run is {}; events go to waiting or running runs",
                            current.value.status.as_str()
                        ),
                    ));
                }
                let steps = current.value.steps.len();
                let Some(target) = current.value.steps.get_mut(step) else {
                    return Err(Error::invalid(
                        StoreName::Kind(Kind::Run),
                        run.as_str(),
                        "step",
                        format!("step {step} does not exist; the run has {steps} steps"),
                    ));
                };
                target.output.push(event.clone());
                match self
                    .write_derived(current.value, Precondition::MustBeAt(current.revision))
                    .await
                {
                    Err(Error::Conflict { .. }) => None,
                    other => Some(other?),
                }
            }
        ))
    }
}

#[async_trait]
impl<E: Engine> KeyStore for EngineStore<E> {}

#[async_trait]
impl<E: Engine> CollectionStore for EngineStore<E> {
    async fn update_by_init_id(
        &self,
        init_id: &InitId,
        patch: CollectionPatch,
    ) -> Result<Vec<Versioned<CollectionEntry>>> {
        init_id
            .check("init_id")
            .map_err(|e| e.into_error(StoreName::Kind(Kind::Collection), init_id.as_str()))?;
        Ok(retry_on_contention!(
            StoreName::Kind(Kind::Collection),
            init_id.as_str(),
            "updating entries",
            {
                let mut changed = Vec::new();
                let mut mutations = Vec::new();
                let entries = self
                    .all_records::<CollectionEntry>(CollectionFilter::InitId(init_id.clone()))
                    .await?;
                for mut entry in entries {
                    if patch.apply(&mut entry.value) {
                        let expect = entry.expect();
                        let mut prepared = self.prepare_put(&mut entry.value, expect)?;
                        mutations.append(&mut prepared.mutations);
                        changed.push(entry.value);
                    }
                }
                if mutations.is_empty() {
                    return Ok(Vec::new());
                }
                let committed = match self.commit(mutations, &[]).await {
                    Err(Error::Conflict { .. } | Error::NotFound { .. }) => continue,
                    other => other?,
                };
                Some(
                    changed
                        .into_iter()
                        .zip(committed)
                        .map(|(value, c)| Versioned::from_committed(value, &c))
                        .collect(),
                )
            },
        ))
    }
}

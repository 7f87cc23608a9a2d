//! The dataset a command looks at: its store, named by a URL or a folder path, and the
//! states in it.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use hollow_core::{ReadState, StateId};
use hollow_store::layout::BlobName;
use hollow_store::object_store::{ObjectStore, ObjectStoreScheme};
use hollow_store::{Announcement, BlobStore, Plan};

use crate::progress;

/// Deltas a load follows from the state it has before it starts from a snapshot instead.
const MAX_CHAIN: usize = 1024;

/// One dataset: a store and what it is called on the command line.
#[derive(Clone)]
pub struct Dataset {
    /// The store.
    pub store: BlobStore,
    /// The STORE argument, for messages.
    pub name: String,
}

impl Dataset {
    /// The dataset `location` names: a folder path, `file:///path`, `s3://bucket/prefix`
    /// (`gs://`, `az://` with those features). A folder must exist; a store must hold a
    /// dataset (an announcement or blobs) under the prefix.
    pub async fn open(location: &str) -> anyhow::Result<Self> {
        let store = store_of(location)?;
        let dataset = Self {
            store,
            name: location.to_string(),
        };
        let reach = || {
            let settings = match location.starts_with("s3") {
                true => " (S3 settings come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL; AWS_ALLOW_HTTP=true for a plain-HTTP endpoint)",
                false => "",
            };
            format!("cannot reach {location}{settings}")
        };
        // An announcement says a dataset is there; only without one is the store listed.
        let announced = dataset
            .store
            .announcement_object()
            .await
            .with_context(reach)?;
        if announced.is_none() && dataset.blobs().await.with_context(reach)?.is_empty() {
            let hint = match dataset.store.dataset_folder() {
                Some(folder) => datasets_below(&folder),
                None => dataset.store.hint_for_missing_announcement().await,
            }
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
            bail!(
                "no dataset at {}: no announcement and no blobs under {}{hint}",
                dataset.name,
                dataset.store.location("")
            );
        }
        Ok(dataset)
    }

    /// Every blob with its stored size.
    pub async fn blobs(&self) -> anyhow::Result<Vec<(BlobName, u64)>> {
        self.store
            .list_with_sizes()
            .await
            .with_context(|| format!("listing {}", self.store.location("")))
    }

    /// Every blob's name.
    pub async fn blob_names(&self) -> anyhow::Result<Vec<BlobName>> {
        Ok(self.blobs().await?.into_iter().map(|(b, _)| b).collect())
    }

    /// The announcement, if a state is announced.
    pub async fn announced(&self) -> anyhow::Result<Option<Announcement>> {
        Ok(self.store.announcement().await?)
    }

    /// The state of `version` (the announced one for `None`): on the line of the announced
    /// state when several states of that version are in the store.
    pub async fn resolve(&self, version: Option<u64>) -> anyhow::Result<StateId> {
        match version {
            None => self.resolve_in(&[], None).await,
            Some(_) => self.resolve_in(&self.blob_names().await?, version).await,
        }
    }

    /// [`Dataset::resolve`] among `blobs`, the store's blobs listed already (unused for the
    /// announced state).
    pub async fn resolve_in(
        &self,
        blobs: &[BlobName],
        version: Option<u64>,
    ) -> anyhow::Result<StateId> {
        let announced = self.announced().await?.map(|a| a.state);
        match version {
            None => announced.ok_or_else(|| {
                anyhow!(
                    "nothing is announced at {}; name a version with --version (see `hollow versions {}`)",
                    self.store.location(hollow_store::layout::ANNOUNCEMENT),
                    self.name
                )
            }),
            Some(v) => hollow_store::resolve_version(blobs, announced, announced, v)
                .map_err(|e| anyhow!("version {v}: {e} (see `hollow versions {}`)", self.name)),
        }
    }

    /// The state of `version` (the announced one for `None`), loaded, listing the store once.
    pub async fn state(&self, version: Option<u64>) -> anyhow::Result<ReadState> {
        let blobs = self.blob_names().await?;
        let target = self.resolve_in(&blobs, version).await?;
        Ok(self.load_in(&blobs, None, target).await?.0)
    }

    /// Loads `target`, from `current` by deltas when they lead there, showing progress.
    pub async fn load(
        &self,
        current: Option<&ReadState>,
        target: StateId,
    ) -> anyhow::Result<(ReadState, Plan)> {
        self.load_in(&self.blob_names().await?, current, target)
            .await
    }

    /// [`Dataset::load`] with `blobs`, the store's blobs listed already.
    pub async fn load_in(
        &self,
        blobs: &[BlobName],
        current: Option<&ReadState>,
        target: StateId,
    ) -> anyhow::Result<(ReadState, Plan)> {
        let spinner = progress::spinner(format!("loading version {}", target.version));
        let loaded = hollow_store::load_listed(&self.store, blobs, current, target, MAX_CHAIN)
            .await
            .with_context(|| format!("loading version {} from {}", target.version, self.name));
        spinner.finish_and_clear();
        loaded
    }
}

/// For a folder that holds no dataset: the folders below it that do.
fn datasets_below(folder: &Path) -> Option<String> {
    let found: Vec<String> = std::fs::read_dir(folder)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(hollow_store::layout::ANNOUNCEMENT).is_file())
        .map(|p| p.display().to_string())
        .collect();
    (!found.is_empty()).then(|| format!("datasets are in {}", found.join(", ")))
}

/// The store `location` names.
pub fn store_of(location: &str) -> anyhow::Result<BlobStore> {
    if !location.contains("://") {
        return local(Path::new(location));
    }
    let url = url::Url::parse(location).with_context(|| format!("{location} is not a URL"))?;
    let (scheme, prefix) = ObjectStoreScheme::parse(&url).map_err(|e| {
        anyhow!("{location}: {e} (a store is a folder, file:///path or s3://bucket/prefix)")
    })?;
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::Local => {
            let path = url
                .to_file_path()
                .map_err(|()| anyhow!("{location} is not a local path"))?;
            return local(&path);
        }
        ObjectStoreScheme::AmazonS3 => s3(&url)?,
        ObjectStoreScheme::GoogleCloudStorage => gcs(&url)?,
        ObjectStoreScheme::MicrosoftAzure => azure(&url)?,
        ObjectStoreScheme::Memory => {
            bail!("{location}: an in-memory store holds nothing from outside this process")
        }
        other => bail!("{location}: stores of kind {other:?} are not supported"),
    };
    Ok(BlobStore::new(store, prefix.as_ref()))
}

/// A dataset in a local folder.
fn local(folder: &Path) -> anyhow::Result<BlobStore> {
    if !folder.is_dir() {
        bail!("{} is not a folder", folder.display());
    }
    Ok(BlobStore::local(folder, "")?)
}

#[cfg(feature = "aws")]
fn s3(url: &url::Url) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let store = hollow_store::object_store::aws::AmazonS3Builder::from_env()
        .with_url(url.as_str())
        .build()
        .with_context(|| format!("{url}: S3 settings (AWS_* variables)"))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "aws"))]
fn s3(url: &url::Url) -> anyhow::Result<Arc<dyn ObjectStore>> {
    bail!("{url}: this hollow was built without S3 support (feature `aws`)")
}

#[cfg(feature = "gcp")]
fn gcs(url: &url::Url) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let store = hollow_store::object_store::gcp::GoogleCloudStorageBuilder::from_env()
        .with_url(url.as_str())
        .build()
        .with_context(|| format!("{url}: Google Cloud Storage settings (GOOGLE_* variables)"))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "gcp"))]
fn gcs(url: &url::Url) -> anyhow::Result<Arc<dyn ObjectStore>> {
    bail!("{url}: this hollow was built without Google Cloud Storage support (feature `gcp`)")
}

#[cfg(feature = "azure")]
fn azure(url: &url::Url) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let store = hollow_store::object_store::azure::MicrosoftAzureBuilder::from_env()
        .with_url(url.as_str())
        .build()
        .with_context(|| format!("{url}: Azure settings (AZURE_* variables)"))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "azure"))]
fn azure(url: &url::Url) -> anyhow::Result<Arc<dyn ObjectStore>> {
    bail!("{url}: this hollow was built without Azure support (feature `azure`)")
}

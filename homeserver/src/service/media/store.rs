//! Media files on disk, content-addressed by SHA-256 (`<root>/ab/cd/abcd…`), so the same bytes
//! uploaded twice are stored once.
//!
//! A write lands whole or not at all: the bytes stream into a temporary file under
//! `<root>/tmp/` (the same file system, so the final rename is atomic), which is fsynced, renamed
//! to its content address, and the directory fsynced. Only then may metadata point at it. A
//! crash leaves at most a temporary file, removed at the next start, or a complete file that no
//! metadata names yet; never a partial file under a final name.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

/// Where a file's bytes live, and how many there are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    /// Lowercase hex SHA-256 of the content: its address.
    pub sha256: String,
    pub size: u64,
}

pub struct FileStore {
    root: PathBuf,
    tmp: PathBuf,
    /// Files are shared by every record with the same content, so a file may be removed only
    /// when no record names it. Placing a file and committing the record that names it happen
    /// under a read guard ([`Placed`]); deciding that a file is unreferenced and removing it
    /// happen under the write guard ([`Removal`]). So a removal can never fall between an
    /// upload finding its bytes already on disk and its record committing.
    references: Arc<tokio::sync::RwLock<()>>,
}

/// A file at its content address, held there until the record naming it is committed: drop
/// it after the commit.
pub struct Placed {
    pub file: StoredFile,
    _held: tokio::sync::OwnedRwLockReadGuard<()>,
}

/// Exclusive permission to remove unreferenced files; while it lives no file is placed.
pub struct Removal<'a> {
    store: &'a FileStore,
    _exclusive: tokio::sync::RwLockWriteGuard<'a, ()>,
}

impl Removal<'_> {
    /// Removes the file with this content hash. The caller has committed the deletion of
    /// every record naming it and checked, under this guard, that no record names it any
    /// more. A file already gone is not an error.
    pub async fn remove(&self, sha256: &str) -> Result<()> {
        match tokio::fs::remove_file(self.store.path_of(sha256)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("cannot remove a media file", e)),
        }
    }
}

impl FileStore {
    /// Opens (creating) the store at `root` and removes the temporary files of writes that a
    /// crash or a kill interrupted.
    pub fn open(root: &Path) -> Result<Self> {
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| io_error(&format!("cannot create {}", tmp.display()), e))?;
        let mut removed = 0;
        let entries = std::fs::read_dir(&tmp).map_err(|e| io_error(&format!("cannot list {}", tmp.display()), e))?;
        for entry in entries.flatten() {
            if std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed the temporary files of interrupted media writes");
        }
        Ok(Self { root: root.to_owned(), tmp, references: Arc::default() })
    }

    /// The directory of temporary files (tests look into it).
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// The final place of the file with this content hash.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        let (a, b) = (sha256.get(0..2).unwrap_or("00"), sha256.get(2..4).unwrap_or("00"));
        self.root.join(a).join(b).join(sha256)
    }

    /// Streams `body` to disk and returns its address once it is durable, held in place until
    /// the returned guard is dropped: commit the record naming the file first. More than
    /// `limit` bytes is 413 `M_TOO_LARGE` as soon as the limit is passed; on any failure, and
    /// when the caller stops polling (a client that disconnects), the temporary file is
    /// removed.
    pub async fn write_held<S>(&self, body: S, limit: u64) -> Result<Placed>
    where
        S: Stream<Item = Result<Bytes>>,
    {
        let temp = TempFile(Some(self.tmp.join(format!("{:032x}.part", rand::random::<u128>()))));
        let path = temp.path().to_owned();
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| io_error("cannot create a temporary media file", e))?;
        // Fewer, larger writes: each write of tokio's File is a trip to the blocking pool.
        let mut writer = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(Error::too_large(format!("Media is larger than {limit} bytes")));
            }
            hasher.update(&chunk);
            writer.write_all(&chunk).await.map_err(|e| io_error("cannot write a media file", e))?;
        }
        writer.flush().await.map_err(|e| io_error("cannot write a media file", e))?;
        let file = writer.into_inner();
        file.sync_all().await.map_err(|e| io_error("cannot sync a media file", e))?;
        drop(file);

        let sha256 = hex::encode(hasher.finalize());
        let destination = self.path_of(&sha256);
        let root = self.root.clone();
        // Only the rename and the record's commit are held, never the streaming.
        let held = self.references.clone().read_owned().await;
        tokio::task::spawn_blocking(move || place(temp, &destination, &root))
            .await
            .map_err(|e| Error::internal(format!("media write task failed: {e}")))?
            .map_err(|e| io_error("cannot store a media file", e))?;
        Ok(Placed { file: StoredFile { sha256, size }, _held: held })
    }

    /// [`FileStore::write_held`] for a file no record will name until later: nothing keeps it
    /// from a concurrent removal in between, so prefer `write_held` whenever a record follows.
    pub async fn write<S>(&self, body: S, limit: u64) -> Result<StoredFile>
    where
        S: Stream<Item = Result<Bytes>>,
    {
        Ok(self.write_held(body, limit).await?.file)
    }

    /// Waits for the files being placed to have their records committed, then keeps new ones
    /// out until the guard is dropped.
    pub async fn removal(&self) -> Removal<'_> {
        Removal { store: self, _exclusive: self.references.write().await }
    }

    /// Opens a stored file for reading; `None` if it is not on disk.
    pub async fn open_file(&self, file: &StoredFile) -> Result<Option<tokio::fs::File>> {
        match tokio::fs::File::open(self.path_of(&file.sha256)).await {
            Ok(handle) => Ok(Some(handle)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("cannot open a media file", e)),
        }
    }
}

/// Moves the complete, synced temporary file to its content address and makes the rename
/// durable. When the address already holds a file, it holds these very bytes (it was synced
/// before it was renamed there), so the temporary copy is simply dropped.
fn place(mut temp: TempFile, destination: &Path, root: &Path) -> io::Result<()> {
    let directory = destination.parent().unwrap_or(root);
    create_dir_durably(directory, root)?;
    if destination.exists() {
        return Ok(()); // `temp` is removed on drop.
    }
    std::fs::rename(temp.path(), destination)?;
    temp.0 = None;
    sync_dir(directory)
}

/// Creates `directory` and the missing ones between it and `root`, syncing each new entry's
/// parent so that the directories survive a crash as well as the file does.
fn create_dir_durably(directory: &Path, root: &Path) -> io::Result<()> {
    if directory.is_dir() {
        return Ok(());
    }
    if let Some(parent) = directory.parent().filter(|p| p.starts_with(root) && *p != directory) {
        create_dir_durably(parent, root)?;
    }
    match std::fs::create_dir(directory) {
        Ok(()) => sync_dir(directory.parent().unwrap_or(root)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn sync_dir(directory: &Path) -> io::Result<()> {
    std::fs::File::open(directory)?.sync_all()
}

/// A temporary file that is removed when dropped, unless it has been renamed into place.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn io_error(what: &str, error: io::Error) -> Error {
    Error::internal(format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::stream;

    use super::FileStore;
    use crate::error::{Error, Result};

    fn chunks(parts: &[&'static [u8]]) -> impl futures::Stream<Item = Result<Bytes>> {
        stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    fn files_in(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map(|entries| entries.count()).unwrap_or(0)
    }

    #[tokio::test]
    async fn writes_by_content_address_and_deduplicates() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let first = store.write(chunks(&[b"hello ", b"world"]), 100).await.unwrap();
        assert_eq!(first.size, 11);
        assert_eq!(first.sha256, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
        let path = store.path_of(&first.sha256);
        assert!(path.ends_with("b9/4d/b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"));
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");

        let second = store.write(chunks(&[b"hello world"]), 100).await.unwrap();
        assert_eq!(second, first);
        assert_eq!(files_in(store.tmp_dir()), 0, "no temporary file is left behind");
    }

    #[tokio::test]
    async fn an_oversize_or_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let error = store.write(chunks(&[b"12345", b"67890"]), 8).await.unwrap_err();
        assert_eq!(error.errcode(), "M_TOO_LARGE");
        let failing = stream::iter(vec![Ok(Bytes::from_static(b"abc")), Err(Error::internal("client went away"))]);
        assert!(store.write(failing, 100).await.is_err());
        assert_eq!(files_in(store.tmp_dir()), 0);
        assert_eq!(files_in(dir.path()), 1, "only the tmp directory: {:?}", std::fs::read_dir(dir.path()).unwrap().collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn leftovers_of_interrupted_writes_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        std::fs::write(store.tmp_dir().join("interrupted.part"), b"half").unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        assert_eq!(files_in(store.tmp_dir()), 0);
    }
}

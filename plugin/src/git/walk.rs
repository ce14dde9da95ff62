//! One history walk that finds, for many paths at once, the last commit that touched each path.
//!
//! "Touched" means what `git log -1 --format=%H <start> -- <path>` means with git's default history
//! simplification:
//!
//! - a commit with one parent touches a path when the blob at the path differs from the parent's
//!   (added, deleted, modified, or turned into/from a directory);
//! - a merge that is TREESAME to one of its parents for a path (same blob as that parent) does not
//!   touch it, and the path's history continues through the first such parent only; a merge that
//!   differs from every parent touches it;
//! - a root commit touches every path it contains;
//! - renames are not followed (like `git log` without `--follow`): a renamed file was touched by the
//!   commit that added it at its new path.
//!
//! Commits are visited newest first by committer date, as git does, and every commit is read once.
//! Each queued commit carries the set of paths whose history still runs through it, so merges send
//! each path down only the parent git would follow. The walk compares only the parts of the trees
//! that lead to paths still unresolved (skipping identical leading and trailing tree entries at
//! byte level), and stops as soon as every path is resolved. A commit reached again with paths it
//! did not carry (equal dates, clock skew) is walked again for those paths only.
//!
//! Reading objects (inflating them) is most of the cost, so for large walks a second thread reads
//! ahead along the first-parent chain: commits, and the parent-side trees of commit pairs the walk
//! has not reached yet. The walk takes what it finds there and reads the rest itself; the results
//! do not depend on the read-ahead. Memory stays bounded: a two-generation cache of raw trees, a
//! 32 MiB delta-base cache, and at most 8,192 objects read ahead.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::{CommitRefIter, Find};

use super::IdMap;

/// A parent's tree, and (when not queued yet) its parents and date.
type ParentInfo = (ObjectId, Option<(Vec<ObjectId>, i64)>);

/// A commit's tree, parents and committer date.
type CommitData = (ObjectId, Vec<ObjectId>, i64);

/// What the walk did, for benchmarks and `--verbose` style diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Commits read from the object database.
    pub commits: usize,
    /// Tree objects read from the object database (cache misses).
    pub trees: usize,
    /// Commits and trees the read-ahead thread read for the walk (included in the above when the
    /// walk used them).
    pub prefetched: usize,
}

/// A failure while walking: which object could not be read and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkError {
    pub object: ObjectId,
    pub message: String,
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "object {}: {}", self.object, self.message)
    }
}

impl std::error::Error for WalkError {}

/// For each of `paths` (repository-relative, `/`-separated), the last commit at or before `start`
/// that touched it; `None` for a path that does not exist at `start`.
pub fn last_commits<P: AsRef<[u8]>>(
    repo: &gix::Repository,
    start: ObjectId,
    paths: &[P],
) -> Result<(Vec<Option<ObjectId>>, Stats), WalkError> {
    let mut walk = Walk::new(repo, paths);
    // A second thread reads ahead along the first-parent chain (commits and the trees the diffs
    // will need) while the walk works behind it: object reads (inflating) are most of the cost.
    let read_ahead = walk.unresolved >= READ_AHEAD_MIN_PATHS;
    let helper_repo = repo.clone();
    let (shared, trie, counts) = (walk.shared.clone(), walk.trie.clone(), walk.counts.clone());
    shared.progress.store(i64::MAX, Relaxed);
    let result = std::thread::scope(|s| {
        if read_ahead {
            s.spawn(move || read_ahead_thread(helper_repo, start, &trie, &counts, &shared));
        }
        let r = walk.run(start);
        walk.shared.stop.store(true, Relaxed);
        r
    });
    result?;
    walk.stats.prefetched = walk.prefetched_used;
    let by_unique = walk.resolved;
    let out = walk
        .path_of_input
        .iter()
        .map(|&u| by_unique[u as usize])
        .collect();
    Ok((out, walk.stats))
}

/// Walks of fewer paths than this do not start the read-ahead thread.
const READ_AHEAD_MIN_PATHS: usize = 32;
/// The read-ahead thread skips ahead when the walk is closer than this many commits …
const READ_AHEAD_MIN_LEAD: usize = 16;
/// … and waits when it is further ahead than this.
const READ_AHEAD_MAX_LEAD: usize = 768;
/// At most this many read-ahead objects wait for the walk (bounded memory).
const READ_AHEAD_MAX_OBJECTS: usize = 8192;

/// What the read-ahead thread hands to the walk.
#[derive(Default)]
struct Shared {
    trees: Mutex<IdMap<Arc<[u8]>>>,
    commits: Mutex<IdMap<CommitData>>,
    /// Committer date of the commit the walk took from its queue last (the walk goes newest
    /// first, so this says how far back it is).
    progress: AtomicI64,
    stop: AtomicBool,
}

fn read_object(
    repo: &gix::Repository,
    id: &ObjectId,
    kind: gix::objs::Kind,
    buf: &mut Vec<u8>,
) -> Option<()> {
    let data = repo.objects.try_find(id, buf).ok()??;
    (data.kind == kind).then_some(())
}

fn read_commit_data(
    repo: &gix::Repository,
    id: &ObjectId,
    buf: &mut Vec<u8>,
) -> Option<CommitData> {
    read_object(repo, id, gix::objs::Kind::Commit, buf)?;
    let it = CommitRefIter::from_bytes(buf, repo.object_hash());
    let tree = it.clone().tree_id().ok()?;
    let parents: Vec<ObjectId> = it.parent_ids().collect();
    let time = it.committer().map(|s| s.seconds()).unwrap_or_default();
    Some((tree, parents, time))
}

/// Reads ahead along the first-parent chain from `start`: every commit, and for commit pairs the
/// walk has not reached yet, the parent's trees that differ along wanted paths. Everything read
/// goes to `shared` for the walk to take. Any failure just ends the read-ahead (the walk reads
/// for itself and reports errors).
fn read_ahead_thread(
    repo: gix::Repository,
    start: ObjectId,
    trie: &Trie,
    counts: &[AtomicU32],
    shared: &Shared,
) {
    let hash_len = repo.object_hash().len_in_bytes();
    let mut buf = Vec::new();
    let Some((mut child_tree, mut child_parents, _)) = read_commit_data(&repo, &start, &mut buf)
    else {
        return;
    };
    // Trees of the current child commit (read as the parent side one step earlier).
    let mut child_trees: IdMap<Arc<[u8]>> = IdMap::default();
    let mut steps = 0usize;
    // Committer dates of the chain's commits, in chain order.
    let mut times: Vec<i64> = Vec::new();
    while !shared.stop.load(Relaxed) {
        let Some(&parent) = child_parents.first() else {
            break;
        };
        let Some((parent_tree, parent_parents, time)) = read_commit_data(&repo, &parent, &mut buf)
        else {
            break;
        };
        {
            let mut commits = shared.commits.lock().unwrap_or_else(|p| p.into_inner());
            if commits.len() < READ_AHEAD_MAX_OBJECTS {
                commits.insert(parent, (parent_tree, parent_parents.clone(), time));
            }
        }
        times.push(time);
        // Keep a lead on the walk: skip pairs it is about to do, wait when far ahead. The walk's
        // position on this chain: the steps at or after its date (dates fall along the chain).
        let walk_at = |times: &[i64]| {
            let t = shared.progress.load(Relaxed);
            times.partition_point(|&x| x >= t)
        };
        let mut at = walk_at(&times);
        while steps > at + READ_AHEAD_MAX_LEAD && !shared.stop.load(Relaxed) {
            std::thread::sleep(std::time::Duration::from_micros(200));
            at = walk_at(&times);
        }
        let mut parent_trees: IdMap<Arc<[u8]>> = IdMap::default();
        if steps >= at + READ_AHEAD_MIN_LEAD {
            let mut read = |id: ObjectId,
                            side_child: bool,
                            parent_trees: &mut IdMap<Arc<[u8]>>|
             -> Option<Arc<[u8]>> {
                if side_child && let Some(t) = child_trees.get(&id) {
                    return Some(t.clone());
                }
                if let Some(t) = parent_trees.get(&id) {
                    return Some(t.clone());
                }
                read_object(&repo, &id, gix::objs::Kind::Tree, &mut buf)?;
                let t: Arc<[u8]> = Arc::from(buf.as_slice());
                if !side_child {
                    parent_trees.insert(id, t.clone());
                }
                Some(t)
            };
            // Depth-first over differing directories along wanted paths.
            let mut stack = vec![(0u32, parent_tree, child_tree)];
            while let Some((node, old, new)) = stack.pop() {
                if old == new || counts[node as usize].load(Relaxed) == 0 {
                    continue;
                }
                let (Some(a), Some(b)) = (
                    read(old, false, &mut parent_trees),
                    read(new, true, &mut parent_trees),
                ) else {
                    break;
                };
                let mut ib = 0;
                let mut ia = 0;
                while ia < a.len() && ib < b.len() {
                    let (Some(x), Some(y)) =
                        (raw_entry(&a, ia, hash_len), raw_entry(&b, ib, hash_len))
                    else {
                        break;
                    };
                    match git_order(x.name, x.is_tree, y.name, y.is_tree) {
                        Ordering::Less => ia = x.end,
                        Ordering::Greater => ib = y.end,
                        Ordering::Equal => {
                            ia = x.end;
                            ib = y.end;
                            if x.oid != y.oid
                                && x.is_tree
                                && y.is_tree
                                && let Some(c) = trie.child(node, x.name)
                                && !trie.nodes[c as usize].children.is_empty()
                                && let (Ok(xo), Ok(yo)) =
                                    (ObjectId::try_from(x.oid), ObjectId::try_from(y.oid))
                            {
                                stack.push((c, xo, yo));
                            }
                        }
                    }
                }
            }
            let mut trees = shared.trees.lock().unwrap_or_else(|p| p.into_inner());
            for (id, t) in &parent_trees {
                if trees.len() >= READ_AHEAD_MAX_OBJECTS {
                    break;
                }
                trees.insert(*id, t.clone());
            }
        }
        child_trees = parent_trees;
        child_tree = parent_tree;
        child_parents = parent_parents;
        steps += 1;
    }
}

/// The wanted paths as a tree of components, so tree comparisons descend only where they must.
struct Trie {
    nodes: Vec<TrieNode>,
}

#[derive(Default)]
struct TrieNode {
    /// Children by component name, sorted by name bytes.
    children: Vec<(Box<[u8]>, u32)>,
    /// The unique path that ends at this node, if one does.
    path: Option<u32>,
    parent: u32,
}

impl Trie {
    fn child(&self, node: u32, name: &[u8]) -> Option<u32> {
        let children = &self.nodes[node as usize].children;
        children
            .binary_search_by(|(n, _)| n.as_ref().cmp(name))
            .ok()
            .map(|i| children[i].1)
    }
}

/// Which paths a queued commit carries: all unresolved paths, all but some, or only some.
#[derive(Clone)]
enum PathSet {
    All,
    Except(Rc<HashSet<u32>>),
    Only(Rc<HashSet<u32>>),
}

impl PathSet {
    fn contains(&self, p: u32) -> bool {
        match self {
            PathSet::All => true,
            PathSet::Except(x) => !x.contains(&p),
            PathSet::Only(x) => x.contains(&p),
        }
    }

    fn union(self, other: PathSet) -> PathSet {
        match (self, other) {
            (PathSet::All, _) | (_, PathSet::All) => PathSet::All,
            (PathSet::Except(a), PathSet::Except(b)) => {
                PathSet::Except(Rc::new(a.intersection(&b).copied().collect()))
            }
            (PathSet::Except(a), PathSet::Only(b)) | (PathSet::Only(b), PathSet::Except(a)) => {
                PathSet::Except(Rc::new(a.difference(&b).copied().collect()))
            }
            (PathSet::Only(a), PathSet::Only(b)) => {
                PathSet::Only(Rc::new(a.union(&b).copied().collect()))
            }
        }
    }
}

/// A commit waiting in the queue.
struct Pending {
    id: ObjectId,
    tree: ObjectId,
    parents: Vec<ObjectId>,
    set: PathSet,
}

#[derive(PartialEq, Eq)]
struct QueueKey {
    time: i64,
    seq: u64,
    slot: usize,
}

impl Ord for QueueKey {
    fn cmp(&self, other: &Self) -> Ordering {
        // Newest first; among equal dates, first queued first (git's priority queue is stable).
        self.time
            .cmp(&other.time)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for QueueKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Decoded-tree cache with two generations: bounded memory, and the trees of the last few commits
/// (which a linear walk reads twice: once as a commit's, once as its child's parent's) stay hot.
struct TreeCache {
    young: IdMap<Arc<[u8]>>,
    old: IdMap<Arc<[u8]>>,
    limit: usize,
}

impl TreeCache {
    fn get(&mut self, id: &ObjectId) -> Option<Arc<[u8]>> {
        if let Some(t) = self.young.get(id) {
            return Some(t.clone());
        }
        let t = self.old.remove(id)?;
        self.insert(*id, t.clone());
        Some(t)
    }

    fn insert(&mut self, id: ObjectId, data: Arc<[u8]>) {
        if self.young.len() >= self.limit {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(id, data);
    }
}

struct Walk<'r> {
    repo: &'r gix::Repository,
    hash: gix::hash::Kind,
    trie: Arc<Trie>,
    /// How many unresolved paths end at or below each trie node (shared with the read-ahead).
    counts: Arc<Vec<AtomicU32>>,
    shared: Arc<Shared>,
    /// Objects the walk took from the read-ahead.
    prefetched_used: usize,
    /// Components of each unique path, for direct lookups.
    components: Rc<Vec<Vec<Box<[u8]>>>>,
    /// Trie node of each unique path.
    node_of: Vec<u32>,
    path_of_input: Vec<u32>,
    resolved: Vec<Option<ObjectId>>,
    unresolved: usize,
    trees: TreeCache,
    buf: Vec<u8>,
    stats: Stats,
}

impl<'r> Walk<'r> {
    fn new<P: AsRef<[u8]>>(repo: &'r gix::Repository, paths: &[P]) -> Walk<'r> {
        let mut trie = Trie {
            nodes: vec![TrieNode::default()],
        };
        let mut unique: HashMap<&[u8], u32> = HashMap::new();
        let mut components = Vec::new();
        let mut node_of = Vec::new();
        let mut path_of_input = Vec::with_capacity(paths.len());
        for p in paths {
            let bytes: &[u8] = p.as_ref();
            let trimmed = bytes.trim_start_with(|c| c == '/');
            if let Some(&u) = unique.get(trimmed) {
                path_of_input.push(u);
                continue;
            }
            let u = components.len() as u32;
            unique.insert(trimmed, u);
            path_of_input.push(u);
            let comps: Vec<Box<[u8]>> = trimmed
                .split_str("/")
                .filter(|c| !c.is_empty())
                .map(Box::from)
                .collect();
            let mut node = 0u32;
            for c in &comps {
                node = match trie.child(node, c) {
                    Some(n) => n,
                    None => {
                        let n = trie.nodes.len() as u32;
                        trie.nodes.push(TrieNode {
                            parent: node,
                            ..TrieNode::default()
                        });
                        let children = &mut trie.nodes[node as usize].children;
                        let at = children
                            .binary_search_by(|(name, _)| name.as_ref().cmp(c))
                            .unwrap_or_else(|i| i);
                        children.insert(at, (c.clone(), n));
                        n
                    }
                };
            }
            trie.nodes[node as usize].path = Some(u);
            node_of.push(node);
            components.push(comps);
        }
        // Every path starts unresolved; an empty path (the root) can never be a file.
        let counts = Arc::new((0..trie.nodes.len()).map(|_| AtomicU32::new(0)).collect());
        let mut walk = Walk {
            repo,
            hash: repo.object_hash(),
            trie: Arc::new(trie),
            counts,
            shared: Arc::new(Shared::default()),
            prefetched_used: 0,
            components: Rc::new(components),
            node_of,
            path_of_input,
            resolved: Vec::new(),
            unresolved: 0,
            trees: TreeCache {
                young: IdMap::default(),
                old: IdMap::default(),
                limit: 2048,
            },
            buf: Vec::new(),
            stats: Stats::default(),
        };
        walk.resolved = vec![None; walk.components.len()];
        for u in 0..walk.components.len() {
            if walk.node_of[u] != 0 {
                walk.add_unresolved(u as u32, 1);
                walk.unresolved += 1;
            }
        }
        walk
    }

    fn add_unresolved(&mut self, path: u32, delta: i32) {
        let mut node = self.node_of[path as usize];
        loop {
            let count = &self.counts[node as usize];
            count.store(count.load(Relaxed).saturating_add_signed(delta), Relaxed);
            if node == 0 {
                break;
            }
            node = self.trie.nodes[node as usize].parent;
        }
    }

    fn open_below(&self, node: u32) -> bool {
        self.counts[node as usize].load(Relaxed) > 0
    }

    fn is_open(&self, p: u32) -> bool {
        self.resolved[p as usize].is_none() && self.node_of[p as usize] != 0
    }

    fn resolve(&mut self, p: u32, commit: ObjectId) {
        if self.is_open(p) {
            self.resolved[p as usize] = Some(commit);
            self.unresolved -= 1;
            self.add_unresolved(p, -1);
        }
    }

    /// Does `set` still hold an unresolved path?
    fn set_is_live(&self, set: &PathSet) -> bool {
        match set {
            PathSet::All => self.unresolved > 0,
            PathSet::Except(x) => {
                self.unresolved > x.len()
                    || self.unresolved > x.iter().filter(|&&p| self.is_open(p)).count()
            }
            PathSet::Only(x) => x.iter().any(|&p| self.is_open(p)),
        }
    }

    fn read_commit(&mut self, id: ObjectId) -> Result<(ObjectId, Vec<ObjectId>, i64), WalkError> {
        let ahead = self
            .shared
            .commits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(c) = ahead {
            self.prefetched_used += 1;
            return Ok(c);
        }
        let err = |message: String| WalkError {
            object: id,
            message,
        };
        let data = self
            .repo
            .objects
            .try_find(&id, &mut self.buf)
            .map_err(|e| err(super::error_text(&e)))?
            .ok_or_else(|| err("commit not found in the repository".into()))?;
        if data.kind != gix::objs::Kind::Commit {
            return Err(err(format!("expected a commit, found a {}", data.kind)));
        }
        // Only the headers the walk needs; the message and signatures are never parsed.
        let it = CommitRefIter::from_bytes(data.data, self.hash);
        let tree = it
            .clone()
            .tree_id()
            .map_err(|e| err(super::error_text(&e)))?;
        let parents: Vec<ObjectId> = it.parent_ids().collect();
        let time = it.committer().map(|s| s.seconds()).unwrap_or_default();
        self.stats.commits += 1;
        Ok((tree, parents, time))
    }

    fn tree(&mut self, id: ObjectId) -> Result<Arc<[u8]>, WalkError> {
        if let Some(t) = self.trees.get(&id) {
            return Ok(t);
        }
        let ahead = self
            .shared
            .trees
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(t) = ahead {
            self.prefetched_used += 1;
            self.trees.insert(id, t.clone());
            return Ok(t);
        }
        let err = |message: String| WalkError {
            object: id,
            message,
        };
        let data = self
            .repo
            .objects
            .try_find(&id, &mut self.buf)
            .map_err(|e| err(super::error_text(&e)))?
            .ok_or_else(|| err("tree not found in the repository".into()))?;
        if data.kind != gix::objs::Kind::Tree {
            return Err(err(format!("expected a tree, found a {}", data.kind)));
        }
        let t: Arc<[u8]> = Arc::from(data.data);
        self.stats.trees += 1;
        self.trees.insert(id, t.clone());
        Ok(t)
    }

    fn run(&mut self, start: ObjectId) -> Result<(), WalkError> {
        if self.unresolved == 0 {
            return Ok(());
        }
        let mut heap: BinaryHeap<QueueKey> = BinaryHeap::new();
        let mut slots: Vec<Option<Pending>> = Vec::new();
        let mut queued: IdMap<usize> = IdMap::default();
        // The paths each walked commit carried (a commit reached again with paths it did not
        // carry is walked again for those paths only: equal dates and clock skew make this happen).
        let mut done: IdMap<PathSet> = IdMap::default();
        let mut seq = 0u64;

        let (tree, parents, time) = self.read_commit(start)?;
        // Paths missing at the start commit have no history to find.
        let root_tree = self.tree(tree)?;
        for u in 0..self.components.len() as u32 {
            if self.is_open(u)
                && self
                    .entry_in(&root_tree, u)?
                    .is_none_or(|(_, is_tree)| is_tree)
            {
                self.close_missing(u);
            }
        }
        slots.push(Some(Pending {
            id: start,
            tree,
            parents,
            set: PathSet::All,
        }));
        queued.insert(start, 0);
        heap.push(QueueKey { time, seq, slot: 0 });

        let mut changed: Vec<u32> = Vec::new();
        while let Some(key) = heap.pop() {
            if self.unresolved == 0 {
                break;
            }
            let Some(pending) = slots[key.slot].take() else {
                continue;
            };
            self.shared.progress.store(key.time, Relaxed);
            queued.remove(&pending.id);
            let carried = match done.remove(&pending.id) {
                Some(before) => before.union(pending.set.clone()),
                None => pending.set.clone(),
            };
            done.insert(pending.id, carried);
            if !self.set_is_live(&pending.set) {
                continue;
            }
            // Parent trees; parents not queued yet are read now (their date orders the queue).
            let mut parent_info: Vec<ParentInfo> = Vec::with_capacity(pending.parents.len());
            for p in &pending.parents {
                match queued.get(p).and_then(|&slot| slots[slot].as_ref()) {
                    Some(q) => parent_info.push((q.tree, None)),
                    None => {
                        let (t, pp, time) = self.read_commit(*p)?;
                        parent_info.push((t, Some((pp, time))));
                    }
                }
            }
            // Which paths each parent carries on; the rest of the set is resolved here or gone.
            let mut sends: Vec<Option<PathSet>> = vec![None; pending.parents.len()];
            changed.clear();
            match pending.parents.len() {
                0 => {
                    self.diff(0, None, Some(pending.tree), &mut changed)?;
                    for &p in &changed {
                        if pending.set.contains(p) {
                            self.resolve(p, pending.id);
                        }
                    }
                }
                1 => {
                    self.diff_set(&pending.set, parent_info[0].0, pending.tree, &mut changed)?;
                    for &p in &changed {
                        if pending.set.contains(p) {
                            self.resolve(p, pending.id);
                        }
                    }
                    sends[0] = Some(pending.set.clone());
                }
                _ => {
                    // Paths differing from the first parent try the other parents in order.
                    self.diff_set(&pending.set, parent_info[0].0, pending.tree, &mut changed)?;
                    let differing: Vec<u32> = changed
                        .iter()
                        .copied()
                        .filter(|&p| pending.set.contains(p) && self.is_open(p))
                        .collect::<HashSet<u32>>()
                        .into_iter()
                        .collect();
                    let mut per_parent: Vec<HashSet<u32>> =
                        vec![HashSet::new(); pending.parents.len()];
                    let commit_tree = self.tree(pending.tree)?;
                    for &p in &differing {
                        let mine = self.entry_in(&commit_tree, p)?;
                        let mut followed = false;
                        for (i, (pt, _)) in parent_info.iter().enumerate().skip(1) {
                            let ptree = self.tree(*pt)?;
                            if self.entry_in(&ptree, p)? == mine {
                                per_parent[i].insert(p);
                                followed = true;
                                break;
                            }
                        }
                        if !followed {
                            self.resolve(p, pending.id);
                        }
                    }
                    sends[0] = Some(if differing.is_empty() {
                        pending.set.clone()
                    } else {
                        match &pending.set {
                            PathSet::All => {
                                PathSet::Except(Rc::new(differing.iter().copied().collect()))
                            }
                            PathSet::Except(x) => {
                                let mut x: HashSet<u32> =
                                    x.iter().copied().filter(|&p| self.is_open(p)).collect();
                                x.extend(differing.iter().copied());
                                PathSet::Except(Rc::new(x))
                            }
                            PathSet::Only(x) => PathSet::Only(Rc::new(
                                x.iter()
                                    .copied()
                                    .filter(|p| !differing.contains(p) && self.is_open(*p))
                                    .collect(),
                            )),
                        }
                    });
                    for (i, set) in per_parent.into_iter().enumerate().skip(1) {
                        if !set.is_empty() {
                            sends[i] = Some(PathSet::Only(Rc::new(set)));
                        }
                    }
                }
            }
            // Queue the parents: a queued parent gains the paths, a walked one is walked again
            // for paths it did not carry, a new one is queued.
            for ((parent, (ptree, fresh)), send) in
                pending.parents.iter().zip(parent_info).zip(sends)
            {
                let Some(set) = send else { continue };
                if !self.set_is_live(&set) {
                    continue;
                }
                if fresh.is_none() {
                    if let Some(&slot) = queued.get(parent)
                        && let Some(p) = slots[slot].as_mut()
                    {
                        let old = std::mem::replace(&mut p.set, PathSet::All);
                        p.set = old.union(set);
                    }
                    continue;
                }
                let set = match done.get(parent) {
                    Some(carried) => {
                        let extra = self.minus(&set, carried);
                        if extra.is_empty() {
                            continue;
                        }
                        PathSet::Only(Rc::new(extra.into_iter().collect()))
                    }
                    None => set,
                };
                let Some((pparents, ptime)) = fresh else {
                    continue;
                };
                seq += 1;
                let slot = slots.len();
                slots.push(Some(Pending {
                    id: *parent,
                    tree: ptree,
                    parents: pparents,
                    set,
                }));
                queued.insert(*parent, slot);
                heap.push(QueueKey {
                    time: ptime,
                    seq,
                    slot,
                });
            }
        }
        Ok(())
    }

    /// The open paths in `set` that `carried` does not hold.
    fn minus(&self, set: &PathSet, carried: &PathSet) -> Vec<u32> {
        match (set, carried) {
            (_, PathSet::All) => Vec::new(),
            (PathSet::Only(x), c) => x
                .iter()
                .copied()
                .filter(|&p| self.is_open(p) && !c.contains(p))
                .collect(),
            (s, PathSet::Except(cx)) => cx
                .iter()
                .copied()
                .filter(|&p| self.is_open(p) && s.contains(p))
                .collect(),
            (s, PathSet::Only(cx)) => (0..self.resolved.len() as u32)
                .filter(|&p| self.is_open(p) && s.contains(p) && !cx.contains(&p))
                .collect(),
        }
    }

    /// Settles a path that does not exist at the start commit: it has no commit.
    fn close_missing(&mut self, u: u32) {
        if self.is_open(u) {
            self.unresolved -= 1;
            self.add_unresolved(u, -1);
            // A closed path points at the trie root, which never counts as open.
            self.node_of[u as usize] = 0;
        }
    }

    /// Compares a parent's tree with a commit's tree for the paths in `set`. Small sets are
    /// compared path by path; large ones by a diff restricted to the trie.
    fn diff_set(
        &mut self,
        set: &PathSet,
        parent: ObjectId,
        commit: ObjectId,
        out: &mut Vec<u32>,
    ) -> Result<(), WalkError> {
        if parent == commit {
            return Ok(());
        }
        if let PathSet::Only(x) = set
            && x.len() <= 16
        {
            let (pt, ct) = (self.tree(parent)?, self.tree(commit)?);
            for &p in x.iter() {
                if self.is_open(p) && self.entry_in(&pt, p)? != self.entry_in(&ct, p)? {
                    out.push(p);
                }
            }
            return Ok(());
        }
        self.diff(0, Some(parent), Some(commit), out)
    }

    /// The entry (id, is-tree) at unique path `p` inside the tree `root`.
    fn entry_in(
        &mut self,
        root: &Arc<[u8]>,
        p: u32,
    ) -> Result<Option<(ObjectId, bool)>, WalkError> {
        let all = Rc::clone(&self.components);
        let comps = &all[p as usize];
        let mut tree = root.clone();
        let hash_len = self.hash.len_in_bytes();
        for (i, c) in comps.iter().enumerate() {
            let mut found = None;
            let mut at = 0;
            while at < tree.len() {
                let e = raw_entry(&tree, at, hash_len).ok_or_else(|| WalkError {
                    object: ObjectId::null(self.hash),
                    message: "malformed tree object".into(),
                })?;
                at = e.end;
                if e.name == c.as_ref() {
                    let id = ObjectId::try_from(e.oid).map_err(|e| WalkError {
                        object: ObjectId::null(self.hash),
                        message: e.to_string(),
                    })?;
                    // A blob and a tree of the same name cannot both exist in one tree.
                    found = Some((id, e.is_tree));
                    break;
                }
            }
            match found {
                None => return Ok(None),
                Some((id, is_tree)) if i + 1 == comps.len() => return Ok(Some((id, is_tree))),
                Some((id, true)) => tree = self.tree(id)?,
                Some((_, false)) => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Pushes the unique paths below trie `node` whose blob differs between tree `old` and `new`.
    fn diff(
        &mut self,
        node: u32,
        old: Option<ObjectId>,
        new: Option<ObjectId>,
        out: &mut Vec<u32>,
    ) -> Result<(), WalkError> {
        if old == new || !self.open_below(node) {
            return Ok(());
        }
        let old_data = match old {
            Some(id) => Some(self.tree(id)?),
            None => None,
        };
        let new_data = match new {
            Some(id) => Some(self.tree(id)?),
            None => None,
        };
        let a: &[u8] = old_data.as_deref().unwrap_or(&[]);
        let b: &[u8] = new_data.as_deref().unwrap_or(&[]);
        let hash_len = self.hash.len_in_bytes();
        let bad = |at: Option<ObjectId>| WalkError {
            object: at.unwrap_or_else(|| ObjectId::null(gix::hash::Kind::Sha1)),
            message: "malformed tree object".into(),
        };
        // Identical leading entries are skipped at byte level: find the entry holding the first
        // differing byte (both trees have the same entries up to there).
        let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        let (mut ia, mut ib) = (0usize, 0usize);
        while ia < a.len() {
            let e = raw_entry(a, ia, hash_len).ok_or_else(|| bad(old))?;
            if e.end > common {
                break;
            }
            ia = e.end;
        }
        ib = ib.max(ia.min(b.len()));
        loop {
            let ea = if ia < a.len() {
                Some(raw_entry(a, ia, hash_len).ok_or_else(|| bad(old))?)
            } else {
                None
            };
            let eb = if ib < b.len() {
                Some(raw_entry(b, ib, hash_len).ok_or_else(|| bad(new))?)
            } else {
                None
            };
            let (ea, eb) = match (ea, eb) {
                (None, None) => break,
                (Some(x), None) => (Some(x), None),
                (None, Some(y)) => (None, Some(y)),
                (Some(x), Some(y)) => match git_order(x.name, x.is_tree, y.name, y.is_tree) {
                    Ordering::Less => (Some(x), None),
                    Ordering::Greater => (None, Some(y)),
                    Ordering::Equal => (Some(x), Some(y)),
                },
            };
            if let Some(x) = &ea {
                ia = x.end;
            }
            if let Some(y) = &eb {
                ib = y.end;
            }
            if let (Some(x), Some(y)) = (&ea, &eb)
                && x.oid == y.oid
                && x.mode == y.mode
            {
                continue;
            }
            // A differing entry: the rest may be identical again.
            let name = match (&ea, &eb) {
                (Some(x), _) => x.name,
                (None, Some(y)) => y.name,
                (None, None) => break,
            };
            if let Some(child) = self.trie.child(node, name)
                && self.open_below(child)
            {
                let id = |e: &Option<RawEntry<'_>>, tree: bool| {
                    e.as_ref()
                        .filter(|e| e.is_tree == tree && (tree || e.is_blob))
                        .and_then(|e| ObjectId::try_from(e.oid).ok())
                };
                if let Some(p) = self.trie.nodes[child as usize].path
                    && id(&ea, false) != id(&eb, false)
                    && self.is_open(p)
                {
                    out.push(p);
                }
                if !self.trie.nodes[child as usize].children.is_empty() {
                    let (ta, tb) = (id(&ea, true), id(&eb, true));
                    if ta != tb {
                        self.diff(child, ta, tb, out)?;
                    }
                }
            }
            if a.len() - ia == b.len() - ib && a[ia..] == b[ib..] {
                break;
            }
        }
        Ok(())
    }
}

/// One tree entry in the raw tree format: `<mode> <name>\0<hash>`.
struct RawEntry<'a> {
    mode: &'a [u8],
    name: &'a [u8],
    oid: &'a [u8],
    is_tree: bool,
    is_blob: bool,
    /// Offset just past the entry.
    end: usize,
}

fn raw_entry(data: &[u8], at: usize, hash_len: usize) -> Option<RawEntry<'_>> {
    let rest = data.get(at..)?;
    let sp = rest.iter().position(|&c| c == b' ')?;
    let nul = sp + 1 + rest[sp + 1..].iter().position(|&c| c == 0)?;
    let oid_end = nul + 1 + hash_len;
    let oid = rest.get(nul + 1..oid_end)?;
    let mode = &rest[..sp];
    Some(RawEntry {
        mode,
        name: &rest[sp + 1..nul],
        oid,
        is_tree: mode == b"40000",
        is_blob: mode.starts_with(b"100"),
        end: at + oid_end,
    })
}

/// Git's tree order: names compare bytewise, a directory as if its name ended in `/`.
fn git_order(a: &[u8], a_tree: bool, b: &[u8], b_tree: bool) -> Ordering {
    let len = a.len().min(b.len());
    match a[..len].cmp(&b[..len]) {
        Ordering::Equal => {}
        other => return other,
    }
    let end = |tree: bool| if tree { b'/' } else { 0 };
    let ca = a.get(len).copied().unwrap_or(end(a_tree));
    let cb = b.get(len).copied().unwrap_or(end(b_tree));
    ca.cmp(&cb)
}

//! The tracked directory tree: which directories are covered, and where they are now.
//!
//! Nodes are keyed by an `i32` id that names one inode for as long as it is tracked: the
//! inotify watch descriptor (adding a watch to an inode that already has one returns the same
//! descriptor), or with fanotify tracking an id the coverage allocates per file handle
//! (`crate::fid`). So it doubles as the directory's identity: no `stat` per directory, and
//! a re-walk recognises what it has seen.
//!
//! A node stores its parent and its name, not its path, so a rename anywhere in the tree is
//! O(1) (the kernel's watches and marks follow the inode; only this map changes), and paths are
//! rebuilt on demand by walking up. Each node also carries `H`, what is needed to remove the
//! directory's fanotify mark once the directory is out of the tree and its path is unknown
//! (a file handle in the daemon; anything in tests).
//!
//! Pure data: no system calls, so every tracking rule is unit-tested here.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// A tracked directory's id: an inotify watch descriptor, or (fanotify tracking) an id
/// allocated per file handle.
pub type Wd = i32;

#[derive(Debug)]
struct Node<H> {
    /// `None` for an include path (a root).
    parent: Option<Wd>,
    /// The entry name in the parent, or the whole path for a root.
    name: OsString,
    children: HashMap<OsString, Wd>,
    handle: H,
}

/// The covered directories and their places in the tree. See the module docs.
#[derive(Debug)]
pub struct Tree<H> {
    nodes: HashMap<Wd, Node<H>>,
}

impl<H> Default for Tree<H> {
    fn default() -> Self {
        Tree {
            nodes: HashMap::new(),
        }
    }
}

impl<H> Tree<H> {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many directories are tracked.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no directory is tracked.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether `wd` is tracked.
    pub fn contains(&self, wd: Wd) -> bool {
        self.nodes.contains_key(&wd)
    }

    /// Tracks an include path. Returns false (and changes nothing) when `wd` is already
    /// tracked.
    pub fn insert_root(&mut self, wd: Wd, path: PathBuf, handle: H) -> bool {
        self.insert(wd, None, path.into_os_string(), handle)
    }

    /// Tracks directory `name` of `parent`. Returns false (and changes nothing) when `wd` is
    /// already tracked or `parent` is not.
    pub fn insert_child(&mut self, parent: Wd, name: &OsStr, wd: Wd, handle: H) -> bool {
        if !self.nodes.contains_key(&parent) {
            return false;
        }
        self.insert(wd, Some(parent), name.to_owned(), handle)
    }

    fn insert(&mut self, wd: Wd, parent: Option<Wd>, name: OsString, handle: H) -> bool {
        if self.nodes.contains_key(&wd) {
            return false;
        }
        if let Some(p) = parent {
            let node = self.nodes.get_mut(&p).expect("checked by the caller");
            if let Some(old) = node.children.insert(name.clone(), wd) {
                // A stale entry under the same name (its removal event not seen yet): the
                // new directory replaced it.
                self.detach_node(old);
                self.nodes
                    .get_mut(&p)
                    .expect("still there")
                    .children
                    .insert(name.clone(), wd);
            }
        }
        self.nodes.insert(
            wd,
            Node {
                parent,
                name,
                children: HashMap::new(),
                handle,
            },
        );
        true
    }

    /// The tracked child `name` of `parent`.
    pub fn child(&self, parent: Wd, name: &OsStr) -> Option<Wd> {
        self.nodes.get(&parent)?.children.get(name).copied()
    }

    /// The current path of `wd`, rebuilt from the names up to its root.
    pub fn path(&self, wd: Wd) -> Option<PathBuf> {
        let mut names = Vec::new();
        let mut cur = self.nodes.get(&wd)?;
        loop {
            names.push(cur.name.as_os_str());
            match cur.parent {
                Some(p) => cur = self.nodes.get(&p)?,
                None => break,
            }
        }
        let mut path = PathBuf::from(names.pop().expect("at least the root"));
        while let Some(n) = names.pop() {
            path.push(n);
        }
        Some(path)
    }

    /// Moves `wd` to `name` under `new_parent` (a rename inside the tree). Returns false
    /// when either is not tracked or `new_parent` lies inside `wd`'s own subtree.
    pub fn rename(&mut self, wd: Wd, new_parent: Wd, name: &OsStr) -> bool {
        if !self.nodes.contains_key(&wd)
            || !self.nodes.contains_key(&new_parent)
            || self.is_within(new_parent, wd)
        {
            return false;
        }
        self.unlink_from_parent(wd);
        let parent = self.nodes.get_mut(&new_parent).expect("checked");
        if let Some(old) = parent.children.insert(name.to_owned(), wd) {
            if old != wd {
                self.detach_node(old);
                self.nodes
                    .get_mut(&new_parent)
                    .expect("still there")
                    .children
                    .insert(name.to_owned(), wd);
            }
        }
        let node = self.nodes.get_mut(&wd).expect("checked");
        node.parent = Some(new_parent);
        node.name = name.to_owned();
        true
    }

    /// Whether `wd` is `ancestor` or lies below it.
    fn is_within(&self, mut wd: Wd, ancestor: Wd) -> bool {
        loop {
            if wd == ancestor {
                return true;
            }
            match self.nodes.get(&wd).and_then(|n| n.parent) {
                Some(p) => wd = p,
                None => return false,
            }
        }
    }

    /// Stops tracking `wd` and everything below it; returns their descriptors and handles
    /// (for removing their watches and marks), `wd` first.
    pub fn remove_subtree(&mut self, wd: Wd) -> Vec<(Wd, H)> {
        if !self.nodes.contains_key(&wd) {
            return Vec::new();
        }
        self.unlink_from_parent(wd);
        self.take_subtree(wd)
    }

    /// Removes `wd`'s entry in its parent's children.
    fn unlink_from_parent(&mut self, wd: Wd) {
        let Some(node) = self.nodes.get(&wd) else {
            return;
        };
        if let Some(p) = node.parent {
            let name = node.name.clone();
            if let Some(parent) = self.nodes.get_mut(&p) {
                if parent.children.get(&name) == Some(&wd) {
                    parent.children.remove(&name);
                }
            }
        }
    }

    /// Like `remove_subtree` for a node already unlinked from its parent, dropping handles.
    fn detach_node(&mut self, wd: Wd) {
        drop(self.take_subtree(wd));
    }

    fn take_subtree(&mut self, wd: Wd) -> Vec<(Wd, H)> {
        let mut out = Vec::new();
        let mut stack = vec![wd];
        while let Some(w) = stack.pop() {
            if let Some(node) = self.nodes.remove(&w) {
                stack.extend(node.children.values().copied());
                out.push((w, node.handle));
            }
        }
        out
    }

    /// Every tracked descriptor (any order).
    pub fn wds(&self) -> impl Iterator<Item = Wd> + '_ {
        self.nodes.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    /// /w (1) → a (2) → b (3) → c (4); /w → d (5)
    fn sample() -> Tree<&'static str> {
        let mut t = Tree::new();
        assert!(t.insert_root(1, "/w".into(), "h1"));
        assert!(t.insert_child(1, os("a"), 2, "h2"));
        assert!(t.insert_child(2, os("b"), 3, "h3"));
        assert!(t.insert_child(3, os("c"), 4, "h4"));
        assert!(t.insert_child(1, os("d"), 5, "h5"));
        t
    }

    #[test]
    fn paths_are_rebuilt_from_names() {
        let t = sample();
        assert_eq!(t.path(4).unwrap(), PathBuf::from("/w/a/b/c"));
        assert_eq!(t.path(1).unwrap(), PathBuf::from("/w"));
        assert_eq!(t.path(9), None);
        assert_eq!(t.child(2, os("b")), Some(3));
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn duplicates_and_orphans_are_refused() {
        let mut t = sample();
        assert!(!t.insert_child(1, os("again"), 3, "x"));
        assert!(!t.insert_child(42, os("x"), 6, "x"));
        assert!(!t.insert_root(1, "/other".into(), "x"));
        assert_eq!(t.path(3).unwrap(), PathBuf::from("/w/a/b"));
    }

    #[test]
    fn rename_moves_a_whole_subtree_in_constant_time() {
        let mut t = sample();
        assert!(t.rename(3, 5, os("moved")));
        assert_eq!(t.path(4).unwrap(), PathBuf::from("/w/d/moved/c"));
        assert_eq!(t.child(2, os("b")), None);
        assert_eq!(t.child(5, os("moved")), Some(3));
        // Same parent, new name.
        assert!(t.rename(5, 1, os("e")));
        assert_eq!(t.path(4).unwrap(), PathBuf::from("/w/e/moved/c"));
    }

    #[test]
    fn rename_into_own_subtree_is_refused() {
        let mut t = sample();
        assert!(!t.rename(2, 4, os("loop")));
        assert!(!t.rename(2, 2, os("self")));
        assert_eq!(t.path(4).unwrap(), PathBuf::from("/w/a/b/c"));
    }

    #[test]
    fn rename_over_an_existing_entry_drops_the_old_subtree() {
        let mut t = sample();
        // mv /w/a/b /w/d is impossible for a non-empty d, but an event for d's removal may
        // not have arrived yet: the stale entry goes.
        assert!(t.rename(3, 1, os("d")));
        assert!(!t.contains(5));
        assert_eq!(t.path(4).unwrap(), PathBuf::from("/w/d/c"));
    }

    #[test]
    fn remove_subtree_returns_every_handle() {
        let mut t = sample();
        let mut gone = t.remove_subtree(2);
        assert_eq!(gone[0], (2, "h2"));
        gone.sort();
        assert_eq!(gone, vec![(2, "h2"), (3, "h3"), (4, "h4")]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.child(1, os("a")), None);
        assert!(t.remove_subtree(2).is_empty());
        // The name can be reused by a new directory.
        assert!(t.insert_child(1, os("a"), 7, "h7"));
        assert_eq!(t.path(7).unwrap(), PathBuf::from("/w/a"));
    }

    #[test]
    fn insert_over_a_stale_name_replaces_it() {
        let mut t = sample();
        // rmdir a; mkdir a, with the deletion not seen yet.
        assert!(t.insert_child(1, os("a"), 8, "h8"));
        assert!(!t.contains(2) && !t.contains(3) && !t.contains(4));
        assert_eq!(t.child(1, os("a")), Some(8));
    }
}

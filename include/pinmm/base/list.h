// Intrusive doubly linked list with a sentinel head.
//
// Linux counterpart: include/linux/list.h. Nodes are embedded in their
// owner (Page::lru for free lists and LRU lists); container_of-style access
// is done by the owner. Every list is protected by a lock its owner names.
// The `next` field may be read without that lock (a tail page reuses it as
// compound_head and lockless walkers read it), so both links are accessed
// through relaxed atomic_ref: no torn or racy plain accesses.
#pragma once

#include <atomic>
#include <cstdint>

namespace pinmm {

struct ListHead {
  ListHead* next;
  ListHead* prev;

  ListHead* load_next() const {
    return std::atomic_ref<ListHead*>(const_cast<ListHead*&>(next)).load(std::memory_order_relaxed);
  }
  ListHead* load_prev() const {
    return std::atomic_ref<ListHead*>(const_cast<ListHead*&>(prev)).load(std::memory_order_relaxed);
  }
  void store_next(ListHead* n) {
    std::atomic_ref<ListHead*>(next).store(n, std::memory_order_relaxed);
  }
  void store_prev(ListHead* p) {
    std::atomic_ref<ListHead*>(prev).store(p, std::memory_order_relaxed);
  }
};

inline void init_list_head(ListHead* h) {
  h->store_next(h);
  h->store_prev(h);
}

inline bool list_empty(const ListHead* h) { return h->load_next() == h; }

inline void list_insert_between(ListHead* n, ListHead* prev, ListHead* next) {
  next->store_prev(n);
  n->store_next(next);
  n->store_prev(prev);
  prev->store_next(n);
}

// Adds n right after head (stack order).
inline void list_add(ListHead* n, ListHead* head) {
  list_insert_between(n, head, head->load_next());
}
// Adds n right before head (queue order).
inline void list_add_tail(ListHead* n, ListHead* head) {
  list_insert_between(n, head->load_prev(), head);
}

// Unlinks n; its links are left pointing at themselves.
inline void list_del_init(ListHead* n) {
  ListHead* prev = n->load_prev();
  ListHead* next = n->load_next();
  next->store_prev(prev);
  prev->store_next(next);
  init_list_head(n);
}

inline void list_move(ListHead* n, ListHead* head) {
  list_del_init(n);
  list_add(n, head);
}
inline void list_move_tail(ListHead* n, ListHead* head) {
  list_del_init(n);
  list_add_tail(n, head);
}

// Moves every entry of `list` to the front (splice) or the back
// (splice_tail) of `head`, in order; `list` ends empty.
inline void list_splice_init(ListHead* list, ListHead* head) {
  if (list_empty(list)) return;
  ListHead* first = list->load_next();
  ListHead* last = list->load_prev();
  ListHead* at = head->load_next();
  first->store_prev(head);
  head->store_next(first);
  last->store_next(at);
  at->store_prev(last);
  init_list_head(list);
}
inline void list_splice_tail_init(ListHead* list, ListHead* head) {
  if (list_empty(list)) return;
  ListHead* first = list->load_next();
  ListHead* last = list->load_prev();
  ListHead* at = head->load_prev();
  first->store_prev(at);
  at->store_next(first);
  last->store_next(head);
  head->store_prev(last);
  init_list_head(list);
}

}  // namespace pinmm

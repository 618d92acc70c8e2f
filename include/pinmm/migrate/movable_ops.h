// Non-LRU movable pages: driver pages that migration can move.
//
// Linux counterpart: struct movable_operations, __SetPageMovable /
// __ClearPageMovable, isolate_movable_page and putback_movable_ops_page
// (mm/migrate.c, include/linux/migrate.h). Balloon drivers and zsmalloc
// use it: their pages are not on an LRU list and not mapped by user page
// tables, so migration asks the driver to isolate a page, to move its
// contents and references to a new page (the driver registers the new page
// as movable itself), and to take back a page it did not move.
//
// A movable page's mapping word holds its MovableOperations with
// PAGE_MAPPING_MOVABLE set; PG_isolated marks it isolated.
//
// Thread safety: isolation and putback run under the page's folio lock;
// migrate_page runs with both pages locked. The driver guards its own
// state.
#pragma once

#include "pinmm/migrate/migrate.h"

namespace pinmm {

class MovableOperations {
 public:
  virtual ~MovableOperations() = default;
  // The driver agrees to have the page migrated (true) and stops using it
  // for anything else until migrate_page or putback_page.
  virtual bool isolate_page(Page* page) = 0;
  // Moves the contents and the driver's references from src to dst (which
  // the driver must register with set_page_movable). MIGRATEPAGE_SUCCESS,
  // -EAGAIN for a transient failure (retried), another errno otherwise.
  virtual int migrate_page(Page* dst, Page* src, MigrateMode mode) = 0;
  // The page was not migrated: the driver takes it back.
  virtual void putback_page(Page* page) = 0;
};

// __SetPageMovable / __ClearPageMovable (the page is locked or not yet
// visible to anyone else).
void set_page_movable(Page* page, MovableOperations* ops);
void clear_page_movable(Page* page);
// The ops of a movable page, or nullptr.
MovableOperations* page_movable_ops(const Page* page);

// isolate_movable_page: takes a reference, and the driver's consent, for a
// movable page that is not isolated yet.
bool isolate_movable_page(Page* page);

}  // namespace pinmm

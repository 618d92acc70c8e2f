#include "pinmm/phys/mmzone.h"

namespace pinmm {

const char* zone_type_name(ZoneType z) {
  switch (z) {
    case ZONE_NORMAL:
      return "Normal";
    case ZONE_MOVABLE:
      return "Movable";
    case ZONE_DEVICE:
      return "Device";
    case MAX_NR_ZONES:
      break;
  }
  return "?";
}

const char* migratetype_name(MigrateType mt) {
  switch (mt) {
    case MIGRATE_UNMOVABLE:
      return "Unmovable";
    case MIGRATE_MOVABLE:
      return "Movable";
    case MIGRATE_RECLAIMABLE:
      return "Reclaimable";
    case MIGRATE_HIGHATOMIC:
      return "HighAtomic";
    case MIGRATE_CMA:
      return "CMA";
    case MIGRATE_ISOLATE:
      return "Isolate";
    case MIGRATE_TYPES:
      break;
  }
  return "?";
}

}  // namespace pinmm

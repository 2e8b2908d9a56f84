/* Compiled as C: the header is plain C, and a C host can create, step and read an optimizer. */
#include "opal.h"

#include <string.h>

int opal_c_smoke(void) {
  opal_optimizer* opt = NULL;
  float w[6] = {1, 1, 1, 1, 1, 1}, g[6] = {1, -1, 2, -2, 0.5f, 0};
  int64_t shape[2] = {2, 3};
  double lr = 0;
  int64_t t = 0;
  if (opal_create("signum", NULL, &opt) != OPAL_OK) return 1;
  if (opal_add_param(opt, "w", 2, shape, OPAL_F32, OPAL_CPU, w, g) != OPAL_OK) return 2;
  if (opal_set_hparam(opt, "lr", 0.5) != OPAL_OK) return 3;
  if (opal_step(opt, NULL) != OPAL_OK) return 4;
  if (opal_get_hparam(opt, "lr", &lr) != OPAL_OK || lr != 0.5) return 5;
  if (opal_step_count(opt, &t) != OPAL_OK || t != 1) return 6;
  if (w[0] >= 1 || w[1] <= 1) return 7; /* a sign step moved both ways */
  if (opal_get_hparam(opt, "nope", &lr) != OPAL_ERROR_NOT_FOUND || strstr(opal_last_error(), "nope") == NULL) return 8;
  opal_destroy(opt);
  return 0;
}

/*
 * health.c -- grpc.health.v1.Health (gRPC's health checking protocol):
 * the server's overall health (service "") and umadb.v1.DCB's are
 * SERVING while the server runs and NOT_SERVING once it is stopping;
 * any other service name is NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch),
 * as the protocol says.
 */
#include <string.h>

#include "gcall.h"
#include "health.pb-c.h"

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus serving;

static int known(const char *service)
{
    return !service || !*service || strcmp(service, "umadb.v1.DCB") == 0;
}

static serving status_now(gcall *c)
{
    return atomic_load(&gcall_serve(c)->stopping)
               ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
               : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
}

static Grpc__Health__V1__HealthCheckRequest *unpack(gcall *c, const uint8_t *req, size_t len)
{
    Grpc__Health__V1__HealthCheckRequest *rq =
        grpc__health__v1__health_check_request__unpack(gcall_allocator(c), len, req);
    if (!rq)
        gcall_fail(c, GS_INVALID_ARGUMENT, -1,
                   "the request is not a valid grpc.health.v1.HealthCheckRequest message (or "
                   "one that decodes into more than 16 times its size)");
    return rq;
}

static void health_check(gcall *c, const uint8_t *req, size_t len)
{
    Grpc__Health__V1__HealthCheckRequest *rq = unpack(c, req, len);
    if (!rq)
        return;
    int ok = known(rq->service);
    grpc__health__v1__health_check_request__free_unpacked(rq, gcall_free_allocator());
    if (!ok) {
        gcall_fail(c, GS_NOT_FOUND, -1, "unknown service (this server serves \"\" and "
                   "\"umadb.v1.DCB\")");
        return;
    }
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.has_status = 1;
    resp.status = status_now(c);
    gcall_reply(c, &resp.base);
}

static void watch_end(gcall *c)
{
    gcall_fail(c, GS_UNAVAILABLE, -1, "the server is shutting down");
}

static void watch_step(gcall *c);

static void watch_wait(gcall *c)
{
    gcall_park(c, UINT64_MAX, watch_step); /* woken only when the call ends */
}

static void watch_step(gcall *c)
{
    if (!atomic_load(&gcall_serve(c)->stopping)) {
        if (gcall_done(c)) {
            gcall_fail(c, GS_CANCELLED, -1, "cancelled by the client");
            return;
        }
        watch_wait(c);
        return;
    }
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.has_status = 1;
    resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    gcall_send(c, &resp.base, watch_end);
}

static void health_watch(gcall *c, const uint8_t *req, size_t len)
{
    Grpc__Health__V1__HealthCheckRequest *rq = unpack(c, req, len);
    if (!rq)
        return;
    int ok = known(rq->service);
    grpc__health__v1__health_check_request__free_unpacked(rq, gcall_free_allocator());
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.has_status = 1;
    resp.status = ok ? status_now(c)
                     : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    gcall_send(c, &resp.base, watch_wait);
}

const gcall_method serve_health_methods[] = {
    {"/grpc.health.v1.Health/Check", health_check, SERVE_READ},
    {"/grpc.health.v1.Health/Watch", health_watch, SERVE_READ},
    {NULL, NULL, 0},
};

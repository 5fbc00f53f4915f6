/* cricctl run: pull (if needed), runp, create, start in one go, like
 * `crictl run`. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"
#include "cricctl/cmd_container.h"

static int ensure_image(struct cricctl *ctl, Runtime__V1__ContainerConfig *cc, Runtime__V1__PodSandboxConfig *pc,
                        bool always_pull)
{
    if (!cc->image || !cc->image->image || !cc->image->image[0])
        return cricctl_fail("run: the container config has no image.image");
    ProtobufCMessage *m = NULL;
    int r;
    if (!always_pull) {
        Runtime__V1__ImageStatusRequest sreq = RUNTIME__V1__IMAGE_STATUS_REQUEST__INIT;
        sreq.image = cc->image;
        if ((r = cricctl_call(ctl, "ImageService", "ImageStatus", &sreq.base,
                              &runtime__v1__image_status_response__descriptor, &m)))
            return r;
        bool present = ((Runtime__V1__ImageStatusResponse *)m)->image != NULL;
        protobuf_c_message_free_unpacked(m, NULL);
        if (present)
            return 0;
    }
    Runtime__V1__PullImageRequest preq = RUNTIME__V1__PULL_IMAGE_REQUEST__INIT;
    preq.image = cc->image;
    preq.sandbox_config = pc;
    uint64_t saved = ctl->timeout_ms;
    ctl->timeout_ms = 0; /* a pull takes what it takes */
    r = cricctl_call(ctl, "ImageService", "PullImage", &preq.base, &runtime__v1__pull_image_response__descriptor, &m);
    ctl->timeout_ms = saved;
    if (r)
        return r;
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

int cricctl_cmd_run(struct cricctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"runtime", required_argument, NULL, 'r'}, {"pull", no_argument, NULL, 'p'}, {NULL, 0, NULL, 0}};
    const char *handler = "";
    bool always_pull = false;
    int c;
    while ((c = getopt_long(argc, argv, "r:p", longopts, NULL)) != -1) {
        if (c == 'r')
            handler = optarg;
        else if (c == 'p')
            always_pull = true;
        else
            return 2;
    }
    if (argc - optind != 2)
        return cricctl_fail("usage: run [--runtime HANDLER] [--pull] CONTAINER-CONFIG.json POD-CONFIG.json") + 1;
    ProtobufCMessage *cc = NULL, *pc = NULL, *m = NULL;
    char *cid = NULL;
    int r = cricctl__load_json(argv[optind], &runtime__v1__container_config__descriptor, &cc);
    if (!r)
        r = cricctl__load_json(argv[optind + 1], &runtime__v1__pod_sandbox_config__descriptor, &pc);
    if (!r)
        r = ensure_image(ctl, (Runtime__V1__ContainerConfig *)cc, (Runtime__V1__PodSandboxConfig *)pc, always_pull);
    if (!r) {
        Runtime__V1__RunPodSandboxRequest req = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
        req.config = (Runtime__V1__PodSandboxConfig *)pc;
        req.runtime_handler = (char *)handler;
        r = cricctl_call(ctl, "RuntimeService", "RunPodSandbox", &req.base,
                         &runtime__v1__run_pod_sandbox_response__descriptor, &m);
    }
    if (!r) {
        const char *pod = ((Runtime__V1__RunPodSandboxResponse *)m)->pod_sandbox_id;
        r = cricctl__create(ctl, pod, (Runtime__V1__ContainerConfig *)cc, (Runtime__V1__PodSandboxConfig *)pc, &cid);
        if (!r)
            r = cricctl__start(ctl, cid);
        if (!r)
            printf("%s\n", cid);
    }
    free(cid);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    if (cc)
        protobuf_c_message_free_unpacked(cc, NULL);
    if (pc)
        protobuf_c_message_free_unpacked(pc, NULL);
    return r;
}

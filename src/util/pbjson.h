/* protobuf-c messages <-> JSON, driven by descriptors only, so it works for
 * every CRI message.  Encoding follows the proto3 JSON mapping as Go's
 * protojson writes it (what `crictl -o json` prints): lowerCamelCase names,
 * enum values by name, 64-bit integers as strings, bytes as base64, maps as
 * objects, fields at their default value omitted.  Decoding accepts what
 * people write in crictl's pod/container config files: proto field names
 * (snake_case) or lowerCamelCase, enums by name or number, integers as
 * numbers or strings, maps as objects, null as "not set". */
#ifndef CRIC_UTIL_PBJSON_H
#define CRIC_UTIL_PBJSON_H

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>
#include <yajl/yajl_gen.h>

#include "util/err.h"
#include "util/json.h"

/** Renders msg as a JSON object (pretty: two-space indent); caller frees *out. */
int cric_pbjson_encode(const ProtobufCMessage *msg, bool pretty, char **out, cric_error **err);
/** Writes msg as a JSON object into an open generator (to embed it in a
 * larger document).  Returns 0 or -EINVAL if the generator refused. */
int cric_pbjson_gen(yajl_gen g, const ProtobufCMessage *msg);

/** Parses json into a new message of type desc (free with
 * protobuf_c_message_free_unpacked(*out, NULL)).  An unknown field, a wrong
 * type or an out-of-range number is an error naming the field path and line
 * ("line 4: 'metadata.nmae': unknown field"). */
int cric_pbjson_decode(const ProtobufCMessageDescriptor *desc, const char *json, size_t len,
                       ProtobufCMessage **out, cric_error **err);
/** Same from an already parsed tree (j must be an object). */
int cric_pbjson_decode_tree(const ProtobufCMessageDescriptor *desc, const cric_json *j,
                            ProtobufCMessage **out, cric_error **err);

/** proto field name -> lowerCamelCase JSON name as protoc computes it. */
void cric_pbjson_name(const char *proto_name, char *buf, size_t size);

#endif

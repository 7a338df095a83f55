/**
 * The types of sessanger's HTTP API, generated from the server's `/openapi.json` by
 * openapi-typescript: `npm run generate` rewrites this file, and the test
 * `generated types match the server's OpenAPI document` fails when it drifts. Do not edit.
 */

export type paths = {
    "/a01/session": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** `GET /a01/session?user_id=`, as the README's table has it. */
        get: operations["back_session_list_by_query"];
        put?: never;
        /** Creates a session: 200 `{"session_id"}`, or 400 without a `user_id`. */
        post: operations["back_session_create"];
        /** `DELETE /a01/session?user_id=`, as the README's table has it. */
        delete: operations["back_session_revoke_by_query"];
        options?: never;
        head?: never;
        /** `PATCH /a01/session`, the original's update: the session is named in the body. */
        patch: operations["back_session_update_named_in_body"];
        trace?: never;
    };
    "/a01/session/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Reads a session: 200 with its attributes, 404 when unknown. */
        get: operations["back_session_read"];
        put?: never;
        post?: never;
        /** Deletes a session: 200, or 404 when unknown. */
        delete: operations["back_session_remove"];
        options?: never;
        head?: never;
        /** `PATCH /a01/session/{id}`, as the README documents the update. */
        patch: operations["back_session_update_at_path"];
        trace?: never;
    };
    "/a01/session/user/{user_id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** `GET /a01/session/user/{user_id}`: the user's sessions. */
        get: operations["back_session_list_user"];
        put?: never;
        post?: never;
        /** `DELETE /a01/session/user/{user_id}`: signs the user out everywhere. */
        delete: operations["back_session_revoke_user"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/healthz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Liveness: the process answers. Never touches the store, so a store outage does not get the
         *     process restarted.
         */
        get: operations["healthz"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Prometheus metrics, in the text exposition format. */
        get: operations["metrics"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/openapi.json": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** This document. */
        get: operations["openapi_json"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/readyz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Readiness: the store answers a ping. */
        get: operations["readyz"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/sessman/get": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Reads the session; with a user named, only that user's session (another's is 404, as
         *     the original's lookup by user and id found nothing).
         */
        get: operations["sessman_read_get"];
        put?: never;
        /**
         * Reads the session; with a user named, only that user's session (another's is 404, as
         *     the original's lookup by user and id found nothing).
         */
        post: operations["sessman_read_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/sessman/new": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Creates a session with `data` for the user; sets the `PS_SESSID` cookie. */
        get: operations["sessman_new_get"];
        put?: never;
        /** Creates a session with `data` for the user; sets the `PS_SESSID` cookie. */
        post: operations["sessman_new_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/sessman/update": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Replaces the session's data and renews its lifetime. */
        get: operations["sessman_update_get"];
        put?: never;
        /** Replaces the session's data and renews its lifetime. */
        post: operations["sessman_update_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Stream the events the store records, as Server-Sent Events. */
        get: operations["events"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/services": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List registered services (never their secrets), ordered by id, a page at a time. */
        get: operations["list_services"];
        put?: never;
        /** Register a service and issue its token. */
        post: operations["register_service"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/services/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Remove a service; its token stops working. */
        delete: operations["remove_service"];
        options?: never;
        head?: never;
        /**
         * Replace a service's permissions; its token keeps working, with the new permissions, on this
         *     node at once and on the others as soon as the store announces the change.
         */
        patch: operations["update_service"];
        trace?: never;
    };
    "/v1/sessions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List every live session, a page at a time, in the store's own order; with `created_by`,
         *     only those that service created (an app's own sessions, as an express-session store's
         *     `all` lists them). For tools and rare listings, not per request: on Redis a page also
         *     reads the live entries of the shards it visits.
         */
        get: operations["list_sessions"];
        put?: never;
        /**
         * Create a session. The device fields describe the end user's device as the calling service
         *     saw it; they are never taken from this request, whose client is the service, not a browser.
         */
        post: operations["create_session"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sessions/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Read a session. */
        get: operations["get_session"];
        /**
         * Replace attributes and device, only at the version in `If-Match` (sa-token's
         *     `update_session`).
         */
        put: operations["replace_session"];
        post?: never;
        /** Delete a session (a logout). */
        delete: operations["delete_session"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sessions/{id}/attributes": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        /**
         * Change some attributes atomically.
         * @description Keys the patch does not name are never touched, so concurrent patches of different keys
         *     never lose each other's writes. With `If-Match`, applies only to that version.
         */
        patch: operations["patch_attributes"];
        trace?: never;
    };
    "/v1/sessions/{id}/refresh": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Renew a session's idle deadline (never past its absolute one). */
        post: operations["refresh_session"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sessions/{id}/regenerate": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Move a session to a fresh id (do it at login, against session fixation); the old id stops
         *     working at once.
         */
        post: operations["regenerate_session"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/stats": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Count live sessions. */
        get: operations["stats"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/users/{user_id}/sessions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List a user's live sessions, oldest first, a page at a time. */
        get: operations["list_user_sessions"];
        put?: never;
        post?: never;
        /** Delete every session of a user ("sign out everywhere"). */
        delete: operations["revoke_user_sessions"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
};
export type webhooks = Record<string, never>;
export type components = {
    schemas: {
        /** @description The answer to `POST /v1/services`: the only time the token is shown. */
        CreatedService: {
            /** @description The service. */
            service: components["schemas"]["ServiceBody"];
            /** @description Its bearer token, `<service id>.<secret>`; not stored anywhere in clear. */
            token: string;
        };
        /** @description `POST /v1/services`. */
        CreateService: {
            /** @description The new service's id: 1 to 64 characters of a-z, 0-9, '-' and '_'. */
            id: string;
            /** @description A human-readable name; defaults to the id. */
            name?: string | null;
            /** @description What it may do: `read`, `write`, `admin`. */
            permissions: string[];
        };
        /** @description `POST /v1/sessions`. */
        CreateSession: {
            /**
             * Format: date-time
             * @description RFC 3339: an absolute deadline before the configured one (a later one is capped by it).
             */
            absolute_expires_at?: string | null;
            /** @description Initial attributes. */
            attributes?: {
                [key: string]: unknown;
            };
            /** @description The client's device identifier. */
            device_id?: string | null;
            /** @description The client's IP address as the calling service saw it. */
            ip?: string | null;
            /**
             * @description An id chosen by the caller instead of a fresh one (it must carry the user's shard tag:
             *     `SessionId::generate_for`); 409 `session_id_taken` if a live session has it.
             */
            session_id?: string | null;
            /**
             * Format: int64
             * @description Idle lifetime for this session, in seconds, instead of the configured one.
             */
            ttl_secs?: number | null;
            /** @description The client's `User-Agent`. */
            user_agent?: string | null;
            /** @description The user to open a session for. */
            user_id: string;
        };
        /** @description `DELETE /v1/users/{user_id}/sessions`. */
        Deleted: {
            /**
             * Format: int64
             * @description How many live sessions were deleted.
             */
            deleted: number;
        };
        /** @description Where a session was opened from. Every field is optional and free text. */
        Device: {
            /** @description The client's own device identifier (back-session's `device_id`). */
            device_id?: string | null;
            /** @description The client's IP address as the calling service saw it. */
            ip?: string | null;
            /** @description The client's `User-Agent`. */
            user_agent?: string | null;
        };
        /** @description Every error response: `{"error": {"code": "...", "message": "..."}}`. */
        ErrorBody: {
            /** @description What went wrong. */
            error: components["schemas"]["ErrorDetail"];
        };
        /**
         * @description Every value of `error.code`: stable and snake_case; clients branch on these, never on
         *     messages. Serde spells them, for the server's bodies, the clients' decoding and the
         *     OpenAPI schema alike.
         *
         *     # Examples
         *     ```
         *     use sessanger_core::wire::ErrorCode;
         *
         *     assert_eq!(serde_json::to_string(&ErrorCode::SessionNotFound).unwrap(), r#""session_not_found""#);
         *     assert_eq!(ErrorCode::VersionMismatch.to_string(), "version_mismatch");
         *     // A code from a newer server still decodes.
         *     assert_eq!(serde_json::from_str::<ErrorCode>(r#""no_such_code""#).unwrap(), ErrorCode::Unknown);
         *     ```
         * @enum {string}
         */
        ErrorCode: "unauthorized" | "forbidden" | "session_not_found" | "service_not_found" | "not_found" | "method_not_allowed" | "invalid_session_id" | "invalid_request" | "invalid_patch" | "not_an_integer" | "encrypted_attribute" | "deadline_passed" | "unsupported_media_type" | "payload_too_large" | "session_too_large" | "version_mismatch" | "precondition_required" | "too_many_sessions" | "session_id_taken" | "service_exists" | "request_timeout" | "store_unavailable" | "events_unavailable" | "internal";
        /** @description The inside of an [`ErrorBody`]. */
        ErrorDetail: {
            /** @description What to branch on. */
            code: components["schemas"]["ErrorCode"];
            /** @description A sentence for humans; may change between versions. */
            message: string;
        };
        /**
         * @description An event as delivered outside the process: the `data` of a `GET /v1/events` message (whose
         *     `id` is the event id and whose `event` is its `type`), and a `sessanger events tail` line.
         */
        EventBody: {
            /**
             * Format: date-time
             * @description RFC 3339: when the change happened.
             */
            at: string;
            /** @description The session's fingerprint, always: names it in logs without letting anyone use it. */
            fingerprint: string;
            /** @description The event's place in the store's log: resume after it. */
            id: string;
            /** @description `attributes_changed`: the keys the change named. */
            keys?: string[] | null;
            /** @description `regenerated`: the fingerprint of the id that stopped working. */
            old_fingerprint?: string | null;
            /** @description `regenerated`: the id that stopped working (absent as `session_id` is). */
            old_session_id?: string | null;
            /** @description `deleted`: `logout`, `revoked` or `evicted`. */
            reason?: string | null;
            /** @description The service that made the change; absent for the operator's tools and expiry. */
            service?: string | null;
            /**
             * @description The session (for `regenerated`, its new id); absent where the deployment delivers
             *     fingerprints only (`events.session_ids: false`).
             */
            session_id?: string | null;
            /** @description `created`, `refreshed`, `attributes_changed`, `regenerated`, `deleted` or `expired`. */
            type: string;
            /** @description The user whose session it is. */
            user_id: string;
        };
        /** @description Attribute changes, applied in one atomic step; a key may appear in only one of the three. */
        Patch: {
            /** @description Integers to add; an absent key counts from 0. */
            incr?: {
                [key: string]: number;
            };
            /** @description Keys to remove; absent keys are ignored. */
            remove?: string[];
            /** @description Keys to set, with their new values (any JSON). */
            set?: {
                [key: string]: unknown;
            };
        };
        /** @description `POST /v1/sessions/{id}/regenerate`. */
        Regenerated: {
            /** @description The session under its new id. */
            session: components["schemas"]["SessionBody"];
            /** @description The new id; the old one no longer works. */
            session_id: string;
        };
        /** @description `PUT /v1/sessions/{id}`: the new attributes and device, applied with `If-Match`. */
        ReplaceSession: {
            /**
             * Format: date-time
             * @description RFC 3339: a new absolute deadline, earlier or later than the current one (never past
             *     the server's maximum lifetime counted from the session's creation); absent keeps it.
             */
            absolute_expires_at?: string | null;
            /** @description Every attribute the session should hold afterwards. */
            attributes?: {
                [key: string]: unknown;
            };
            /** @description The device; absent means no device information. */
            device?: components["schemas"]["Device"];
        };
        /** @description A registered service as the API shows it: never its secret or the secret's digest. */
        ServiceBody: {
            /**
             * Format: date-time
             * @description RFC 3339.
             */
            created_at: string;
            /** @description The service's id. */
            id: string;
            /** @description Its human-readable name. */
            name: string;
            /** @description What it may do. */
            permissions: string[];
        };
        /** @description `GET /v1/services`. */
        ServiceList: {
            /** @description Where the next page starts (`?cursor=`); absent on the last page. */
            next_cursor?: string | null;
            /** @description One page of the registered services, ordered by id. */
            services: components["schemas"]["ServiceBody"][];
        };
        /** @description A session as the API shows it. */
        SessionBody: {
            /**
             * Format: date-time
             * @description RFC 3339: the deadline no refresh extends.
             */
            absolute_expires_at: string;
            /** @description The session's data. */
            attributes: {
                [key: string]: unknown;
            };
            /**
             * Format: date-time
             * @description RFC 3339.
             */
            created_at: string;
            /** @description The service that created the session. */
            created_by?: string | null;
            /** @description Where it was opened from. */
            device: components["schemas"]["Device"];
            /**
             * Format: date-time
             * @description RFC 3339: when the session dies unless refreshed.
             */
            expires_at: string;
            /**
             * Format: int64
             * @description Idle lifetime in seconds.
             */
            idle_ttl_secs: number;
            /**
             * Format: date-time
             * @description RFC 3339: the last refresh.
             */
            last_access_at: string;
            /** @description The session's id (24 characters of base64url; 43 for sessions of earlier versions). */
            session_id: string;
            /** @description The user it belongs to. */
            user_id: string;
            /**
             * Format: int64
             * @description Grows with every write; also sent as the `ETag`.
             */
            version: number;
        };
        /** @description `GET /v1/users/{user_id}/sessions`. */
        SessionList: {
            /** @description Where the next page starts (`?cursor=`); absent on the last page. */
            next_cursor?: string | null;
            /** @description One page of the user's live sessions, oldest first. */
            sessions: components["schemas"]["SessionBody"][];
        };
        /** @description `GET /v1/sessions`: one page of every live session (of one creator, if asked). */
        SessionScan: {
            /**
             * @description Where the next page starts (`?cursor=`); absent once every session was visited. A
             *     page with a `created_by` filter may hold fewer sessions than asked, even none, and
             *     still have a next one.
             */
            next_cursor?: string | null;
            /** @description The live sessions of the page, in the store's own order. */
            sessions: components["schemas"]["SessionBody"][];
        };
        /** @description `GET /v1/stats`. */
        Stats: {
            /**
             * Format: int64
             * @description Live sessions in the store.
             */
            active_sessions: number;
        };
        /** @description A probe's answer. */
        Status: {
            /** @example ok */
            status: string;
        };
        /** @description `PATCH /v1/services/{id}`: what the service may do from now on (its token stays valid). */
        UpdateService: {
            /** @description Its permissions, replacing the ones it had: `read`, `write`, `admin`. */
            permissions: string[];
        };
    };
    responses: {
        /** @description `forbidden`: the service lacks the permission */
        Forbidden: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description `internal`: the store failed; details are only logged */
        Internal: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description `unauthorized`: missing, malformed or unknown token */
        Unauthorized: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description `store_unavailable`, or `request_timeout` */
        Unavailable: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
    };
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
};
export type $defs = Record<string, never>;
export interface operations {
    back_session_list_by_query: {
        parameters: {
            query: {
                /** @description The user */
                user_id: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Session id → `{create_date, device_id, update_date}` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `invalid_request`: no `user_id` */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    back_session_create: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description `user_id` (required), `device_id`, `auth_code`, `access_token`, `refresh_token`, `user_email`, `exiration_time`; any Content-Type */
        requestBody: {
            content: {
                "application/json": Record<string, never>;
            };
        };
        responses: {
            /** @description `{"session_id"}` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `invalid_request`: no `user_id` */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    back_session_revoke_by_query: {
        parameters: {
            query: {
                /** @description The user */
                user_id: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description `{"deleted": n}` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `invalid_request`: no `user_id` */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    back_session_update_named_in_body: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description `{"session_id": …, "session_attributes": {"key": "text", …}}`; any key is kept */
        requestBody: {
            content: {
                "application/json": Record<string, never>;
            };
        };
        responses: {
            /** @description The keys set, read back */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `invalid_request`: no session id or attributes, an unknown session, a wrong `user_id` */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `session_too_large`: the session would pass its cap */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `invalid_request`: the body cannot be decoded */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    back_session_read: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The session id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Every field as text: `user_id`, `device_id`, the tokens, `user_email`, and any other attribute */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `session_not_found`, or `invalid_session_id` */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    back_session_remove: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The session id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description `{"session_id"}` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `session_not_found`, or `invalid_session_id` */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    back_session_update_at_path: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The session id */
                id: string;
            };
            cookie?: never;
        };
        /** @description `{"session_attributes": {"key": "text", …}}`; any key is kept */
        requestBody: {
            content: {
                "application/json": Record<string, never>;
            };
        };
        responses: {
            /** @description The keys set, read back */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `invalid_request` */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `session_too_large`: the session would pass its cap */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `invalid_request`: the body cannot be decoded */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    back_session_list_user: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The user */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Session id → `{create_date, device_id, update_date}` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
        };
    };
    back_session_revoke_user: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The user */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description `{"deleted": n}` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
        };
    };
    healthz: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Alive */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Status"];
                };
            };
        };
    };
    metrics: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Prometheus text format */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/plain": string;
                };
            };
        };
    };
    openapi_json: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The OpenAPI description of this API */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown;
                };
            };
        };
    };
    readyz: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Ready */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Status"];
                };
            };
            /** @description `store_unavailable` */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    sessman_read_get: {
        parameters: {
            query?: {
                /** @description The session (also `sessionid`, else the `PS_SESSID` cookie) */
                session_id?: string;
                /** @description If sent, the session must be this user's */
                userid?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description `{"session_id", "data"}` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `{"error": "session not found"}`: unknown, or another user's */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
        };
    };
    sessman_read_post: {
        parameters: {
            query?: {
                /** @description The session (also `sessionid`, else the `PS_SESSID` cookie) */
                session_id?: string;
                /** @description If sent, the session must be this user's */
                userid?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description `{"session_id", "data"}` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `{"error": "session not found"}`: unknown, or another user's */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
        };
    };
    sessman_new_get: {
        parameters: {
            query?: {
                /** @description The session's data as JSON text (or `data` in the body) */
                data?: string;
                /** @description The user (also `user`, `user_id`); default `PS_USER` */
                userid?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description `{"userid": …, "data": {…}}`; any Content-Type */
        requestBody: {
            content: {
                "application/json": Record<string, never>;
            };
        };
        responses: {
            /** @description `{"session_id", "data"}`; `Set-Cookie: PS_SESSID` for `session_ttl` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `{"error": "…"}`: a malformed parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `{"error": "…"}`: a wrong API key, or the service lacks `write` */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
        };
    };
    sessman_new_post: {
        parameters: {
            query?: {
                /** @description The session's data as JSON text (or `data` in the body) */
                data?: string;
                /** @description The user (also `user`, `user_id`); default `PS_USER` */
                userid?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description `{"userid": …, "data": {…}}`; any Content-Type */
        requestBody: {
            content: {
                "application/json": Record<string, never>;
            };
        };
        responses: {
            /** @description `{"session_id", "data"}`; `Set-Cookie: PS_SESSID` for `session_ttl` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `{"error": "…"}`: a malformed parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `{"error": "…"}`: a wrong API key, or the service lacks `write` */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
        };
    };
    sessman_update_get: {
        parameters: {
            query?: {
                /** @description The new data as JSON text (or `data` in the body) */
                data?: string;
                /** @description The session (also `sessionid`, else the `PS_SESSID` cookie) */
                session_id?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description `{"session_id": …, "data": {…}}`; any Content-Type */
        requestBody: {
            content: {
                "application/json": Record<string, never>;
            };
        };
        responses: {
            /** @description `{"session_id", "data"}` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `{"error": "…"}`: no or a malformed session id */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `{"error": "session not found"}` */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
        };
    };
    sessman_update_post: {
        parameters: {
            query?: {
                /** @description The new data as JSON text (or `data` in the body) */
                data?: string;
                /** @description The session (also `sessionid`, else the `PS_SESSID` cookie) */
                session_id?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description `{"session_id": …, "data": {…}}`; any Content-Type */
        requestBody: {
            content: {
                "application/json": Record<string, never>;
            };
        };
        responses: {
            /** @description `{"session_id", "data"}` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `{"error": "…"}`: no or a malformed session id */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `{"error": "session not found"}` */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
        };
    };
    events: {
        parameters: {
            query?: {
                /** @description Start after this event id (0: from the oldest kept); `Last-Event-ID` wins over it. Absent: only what happens next */
                after?: string;
                /** @description Comma-separated types to keep: created, refreshed, attributes_changed, regenerated, deleted, expired */
                types?: string;
                /** @description Keep only this user's events */
                user_id?: string;
            };
            header?: {
                /** @description The id of the last event received: resume after it */
                "Last-Event-ID"?: string | null;
            };
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description `text/event-stream`: each message has the event id as `id`, its type as `event` and an EventBody as `data`; `event: lost` (data `{"after", "trimmed_through"}`) says trimming dropped events the client had not seen */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/event-stream": components["schemas"]["EventBody"];
                };
            };
            /** @description `invalid_request`: an unknown type, a malformed user id or event id */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            500: components["responses"]["Internal"];
            /** @description `events_unavailable`: this store keeps no event log yet */
            501: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            503: components["responses"]["Unavailable"];
        };
    };
    list_services: {
        parameters: {
            query?: {
                /** @description The `next_cursor` of the page before; absent for the first */
                cursor?: string;
                /** @description The most services in the page: 1 to 1000, default 100 */
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description One page of the services, and where the next starts */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ServiceList"];
                };
            };
            /** @description `invalid_request`: not a valid limit or cursor */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    register_service: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CreateService"];
            };
        };
        responses: {
            /** @description The service and its token, shown once */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CreatedService"];
                };
            };
            /** @description `invalid_request` */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `service_exists` */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `payload_too_large` */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `unsupported_media_type` */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    remove_service: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The service id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Removed */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `service_not_found` */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    update_service: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The service id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["UpdateService"];
            };
        };
        responses: {
            /** @description The service as it is now */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ServiceBody"];
                };
            };
            /** @description `invalid_request` */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `service_not_found` */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `payload_too_large` */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `unsupported_media_type` */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    list_sessions: {
        parameters: {
            query?: {
                /** @description Only the sessions this service created */
                created_by?: string;
                /** @description The `next_cursor` of the page before; absent for the first */
                cursor?: string;
                /** @description The most sessions in the page: 1 to 1000, default 100 */
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description One page of sessions, and where the next starts */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SessionScan"];
                };
            };
            /** @description `invalid_request`: not a valid limit, cursor or service id */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    create_session: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CreateSession"];
            };
        };
        responses: {
            /** @description The new session */
            201: {
                headers: {
                    /** @description The session's version, for If-Match */
                    ETag?: string;
                    /** @description `/v1/sessions/{id}` */
                    Location?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SessionBody"];
                };
            };
            /** @description `invalid_request` (also: a chosen `session_id` without the user's shard tag) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `too_many_sessions`: the user is at the session limit; `session_id_taken`: a live session has the chosen id */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `payload_too_large`: the body is over 1 MiB; `session_too_large`: the session would pass its cap (attributes or bytes), and nothing was written */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `unsupported_media_type` */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `invalid_patch`: a key or value breaks a size limit; `deadline_passed`: `absolute_expires_at` is not in the future */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    get_session: {
        parameters: {
            query?: never;
            header?: {
                /** @description ETags the client holds (`"7"`, `W/"7"`, `*`): 304 if one is current */
                "If-None-Match"?: string | null;
            };
            path: {
                /** @description The session id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The session */
            200: {
                headers: {
                    /** @description The session's version, for If-Match */
                    ETag?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SessionBody"];
                };
            };
            /** @description The client's copy is current (`If-None-Match`) */
            304: {
                headers: {
                    /** @description The session's version */
                    ETag?: string;
                    [name: string]: unknown;
                };
                content?: never;
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `session_not_found`, or `invalid_session_id` */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    replace_session: {
        parameters: {
            query?: never;
            header: {
                /** @description The versions it may replace (`"7"`, a list, or `*`); weak tags never match */
                "If-Match": string;
                /** @description `return=minimal`: answer 204 with the ETag, no body */
                Prefer?: string | null;
            };
            path: {
                /** @description The session id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ReplaceSession"];
            };
        };
        responses: {
            /** @description The replaced session */
            200: {
                headers: {
                    /** @description The session's new version */
                    ETag?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SessionBody"];
                };
            };
            /** @description Replaced; `Prefer: return=minimal` asked for no body */
            204: {
                headers: {
                    /** @description The session's new version */
                    ETag?: string;
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description `invalid_request` */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `session_not_found`, or `invalid_session_id` */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `version_mismatch`: the session changed since that version */
            412: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `payload_too_large`: the body is over 1 MiB; `session_too_large`: the session would pass its cap (attributes or bytes), and nothing was written */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `unsupported_media_type` */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `invalid_patch`: a key or value breaks a size limit; `deadline_passed`: `absolute_expires_at` is not in the future */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `precondition_required`: no If-Match */
            428: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    delete_session: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The session id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Deleted */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `session_not_found`, or `invalid_session_id` */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    patch_attributes: {
        parameters: {
            query?: never;
            header?: {
                /** @description Apply only at one of these versions (`"7"`, `"7", "8"`, `*`); weak tags never match */
                "If-Match"?: string | null;
                /** @description `return=minimal`: answer 204 with the ETag, no body */
                Prefer?: string | null;
            };
            path: {
                /** @description The session id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["Patch"];
            };
        };
        responses: {
            /** @description The changed session */
            200: {
                headers: {
                    /** @description The session's new version */
                    ETag?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SessionBody"];
                };
            };
            /** @description Changed; `Prefer: return=minimal` asked for no body */
            204: {
                headers: {
                    /** @description The session's new version */
                    ETag?: string;
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description `invalid_request` */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `session_not_found`, or `invalid_session_id` */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `version_mismatch`: the session changed since that version */
            412: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `payload_too_large`: the body is over 1 MiB; `session_too_large`: the session would pass its cap (attributes or bytes), and nothing was written */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `unsupported_media_type` */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description `invalid_patch`, or `not_an_integer` for an increment */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    refresh_session: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The session id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The refreshed session */
            200: {
                headers: {
                    /** @description The session's version */
                    ETag?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SessionBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `session_not_found`, or `invalid_session_id` */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    regenerate_session: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The session's current id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The new id and the session */
            200: {
                headers: {
                    /** @description The session's new version */
                    ETag?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Regenerated"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `session_not_found`, or `invalid_session_id` */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    stats: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Counts */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Stats"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    list_user_sessions: {
        parameters: {
            query?: {
                /** @description The `next_cursor` of the page before; absent for the first */
                cursor?: string;
                /** @description The most sessions in the page: 1 to 1000, default 100 */
                limit?: number;
            };
            header?: never;
            path: {
                /** @description The user id */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description One page of the user's sessions, and where the next starts */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SessionList"];
                };
            };
            /** @description `invalid_request`: not a valid user id, limit or cursor */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    revoke_user_sessions: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The user id */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description How many sessions were deleted */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Deleted"];
                };
            };
            /** @description `invalid_request`: not a valid user id */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
}
type FlattenedDeepRequired<T> = {
    [K in keyof T]-?: FlattenedDeepRequired<T[K] extends unknown[] | undefined | null ? Extract<T[K], unknown[]>[number] : T[K]>;
};
type ReadonlyArray<T> = [
    Exclude<T, undefined>
] extends [
    unknown[]
] ? Readonly<Exclude<T, undefined>> : Readonly<Exclude<T, undefined>[]>;
export const errorCodeValues: ReadonlyArray<FlattenedDeepRequired<components>["schemas"]["ErrorCode"]> = ["unauthorized", "forbidden", "session_not_found", "service_not_found", "not_found", "method_not_allowed", "invalid_session_id", "invalid_request", "invalid_patch", "not_an_integer", "encrypted_attribute", "deadline_passed", "unsupported_media_type", "payload_too_large", "session_too_large", "version_mismatch", "precondition_required", "too_many_sessions", "session_id_taken", "service_exists", "request_timeout", "store_unavailable", "events_unavailable", "internal"];

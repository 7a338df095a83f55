// An Express app keeping its sessions in sessanger through `sessanger/express`: the axum
// example's pages (login, a per-session counter, the user's devices, sign out everywhere),
// written for Express.
//
//   sessanger serve &
//   sessanger service add web --permissions read,write      # prints the token, once
//   SESSANGER_TOKEN='web.…' SESSION_SECRET='…' node server.js --remote http://127.0.0.1:8090
//
// then open http://127.0.0.1:3001 and log in as alice / wonderland (the axum example's users).
// Start the axum example with the same token and secret (`--express-secret`) on another port
// of the same host, and a user logged in through one is logged in through the other: both read
// the cookie `sid`, signed as express-session signs it, as one sessanger session.

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

import express from "express";
import session from "express-session";
import { Client } from "sessanger";
import { SessangerStore } from "sessanger/express";

const { values: args } = parseArgs({
  options: {
    listen: { type: "string", default: "127.0.0.1:3001" },
    remote: { type: "string", default: "http://127.0.0.1:8090" },
    users: { type: "string", default: new URL("../web-app/fixtures/users.json", import.meta.url).pathname },
    // Send the session cookie over HTTPS only (serve behind TLS).
    secure: { type: "boolean", default: false },
  },
});
const token = required("SESSANGER_TOKEN", "a service token with read and write (sessanger service add web)");
const secret = required("SESSION_SECRET", "the secret signing the session cookie (the axum example's --express-secret)");
const users = new Map(Object.entries(JSON.parse(readFileSync(args.users, "utf8"))));

const client = new Client({ baseUrl: args.remote, token });
// Fail now, not at the first visitor, on a wrong URL or token.
await client.stats();
const store = new SessangerStore({ client });

const app = express();
app.disable("x-powered-by");
app.use(express.urlencoded({ extended: false, limit: "4kb" }));
app.use(
  session({
    store,
    genid: store.genid,
    secret,
    name: "sid",
    resave: false,
    saveUninitialized: false,
    cookie: { httpOnly: true, sameSite: "lax", secure: args.secure, path: "/" },
  }),
);

app.get("/", async (req, res) => {
  const user = store.currentUser(req);
  if (user === undefined) return res.redirect("/login");
  req.session.counter = (req.session.counter ?? 0) + 1;
  const here = store.sessionId(req);
  const rows = (await store.listUserSessions(user))
    .map((s) => {
      const marker = s.session_id === here ? " (this device)" : "";
      const agent = s.device.user_agent ?? "unknown device";
      return `<tr><td>${escape(agent)}${marker}</td><td>${s.created_at}</td><td>${s.last_access_at}</td></tr>`;
    })
    .join("");
  res.send(
    page(
      "Your sessions",
      `<h1>Hello, ${escape(user)}</h1>` +
        `<p>You have seen this page <span id="counter">${req.session.counter}</span> times in this session.</p>` +
        `<h2>Your active sessions</h2>` +
        `<table id="sessions"><tr><th>Device</th><th>Logged in</th><th>Last seen</th></tr>${rows}</table>` +
        `<form method="post" action="/logout"><button id="logout">Log out</button></form>` +
        `<form method="post" action="/sign-out-everywhere"><button id="sign-out-everywhere">Sign out all my devices</button></form>`,
    ),
  );
});

// The login form carries a token only this browser's session knows, so another site cannot
// log the visitor in to an account of its choosing (login CSRF).
app.get("/login", (req, res) => {
  const formToken = randomBytes(16).toString("base64url");
  req.session.login_token = formToken;
  res.send(
    page(
      "Log in",
      `<h1>Log in</h1><form method="post" action="/login">` +
        `<input type="hidden" name="token" value="${formToken}">` +
        `<label>User <input id="user" name="user" autocomplete="username"></label>` +
        `<label>Password <input id="password" name="password" type="password" autocomplete="current-password"></label>` +
        `<button id="login">Log in</button></form>`,
    ),
  );
});

app.post("/login", async (req, res) => {
  const expected = req.session.login_token;
  delete req.session.login_token;
  if (typeof expected !== "string" || !same(expected, String(req.body.token ?? ""))) {
    return res.status(403).send(page("Log in", `<p id="error">The form expired; reload it.</p>`));
  }
  const user = String(req.body.user ?? "");
  const password = users.get(user);
  if (typeof password !== "string" || !same(password, String(req.body.password ?? ""))) {
    return res.status(401).send(page("Log in", `<p id="error">Wrong user or password.</p>`));
  }
  await store.logIn(req, user, { user_agent: req.get("user-agent") ?? null });
  res.redirect("/");
});

app.post("/logout", (req, res, next) => {
  req.session.destroy((error) => (error ? next(error) : res.redirect("/login")));
});

app.post("/sign-out-everywhere", async (req, res) => {
  await store.signOutEverywhere(req);
  res.redirect("/login");
});

// Every failure: logged, and shown to the browser as a bare 500.
app.use((error, _req, res, _next) => {
  console.error("request failed:", error);
  if (!res.headersSent) res.status(500).send("Something went wrong");
});

const [host, port] = splitAddress(args.listen);
const listener = app.listen(port, host, () => {
  const { address, port: bound } = listener.address();
  console.log(`listening on http://${address}:${bound}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) process.once(signal, () => listener.close(() => process.exit(0)));

function required(name, what) {
  const value = process.env[name];
  if (!value) {
    console.error(`set ${name}: ${what}`);
    process.exit(2);
  }
  return value;
}

function splitAddress(address) {
  const at = address.lastIndexOf(":");
  return [address.slice(0, at), Number(address.slice(at + 1))];
}

/** Compared in constant time, so response times do not reveal how much of a secret was right. */
function same(a, b) {
  const digest = (text) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(a), digest(b));
}

function page(title, body) {
  return (
    `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title>` +
    `<style>body{font-family:sans-serif;margin:2em}td,th{padding:.2em 1em;text-align:left}</style>` +
    `</head><body>${body}</body></html>`
  );
}

/** User agents and user names are the visitor's text: escaped before they reach the page. */
function escape(text) {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}

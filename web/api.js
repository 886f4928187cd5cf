// API: the HTTP half of the contract (reference/openapi.yaml), one function
// per route. Paths are relative to the page, so the client works behind any
// host or port the server is reached at. Every error becomes an `ApiError`
// carrying the server's `{"error": "..."}` text; a 401 is also reported to
// `onUnauthorized`, which sends the person back to the login screen.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

/**
 * @param {() => string|null} getSid  the current session id, if any
 * @param {(message: string) => void} onUnauthorized  called on any 401
 */
export function createApi({ getSid, onUnauthorized }) {
  async function request(method, path, body, { auth = true } = {}) {
    const headers = { Accept: 'application/json' };
    const sid = auth ? getSid() : null;
    if (sid) headers.Authorization = `Bearer ${sid}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, 'cannot reach the server; check your connection');
    }
    let data = null;
    const text = await res.text().catch(() => '');
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (res.ok) return data ?? {};
    const message = (data && typeof data.error === 'string' && data.error) || describe(res.status);
    if (res.status === 401 && auth && sid && sid === getSid()) onUnauthorized(message);
    throw new ApiError(res.status, message);
  }

  const seg = encodeURIComponent;

  return {
    login: (username) => request('POST', 'api/login', { username }, { auth: false }),
    logout: () => request('POST', 'api/logout'),
    /** Every known username, and the online ones (R9). */
    async users() {
      const [all, online] = await Promise.all([
        request('GET', 'api/users'),
        request('GET', 'api/users?online=true'),
      ]);
      return {
        all: names(all, 'username'),
        online: names(online, 'username'),
      };
    },
    topics: async () => names(await request('GET', 'api/topics'), 'topic'),
    createTopic: (topic) => request('POST', 'api/topics', { topic }),
    deleteTopic: (topic) => request('DELETE', `api/topics/${seg(topic)}`),
    joinTopic: (topic) => request('POST', `api/topics/${seg(topic)}/actions/join`),
    quitTopic: (topic) => request('POST', `api/topics/${seg(topic)}/actions/quit`),
    /** One-to-one message (R16); answers `{id, sent-at}` when the server tells. */
    sendDirect: (from, to, content) =>
      request('POST', 'api/messages', {
        'message-type': 'message',
        from,
        to,
        'content-type': 'text/plain',
        content,
      }),
    /** Topic message (R18); `mentions` fills `to` and may be empty. */
    sendTopic: (from, topic, mentions, content) =>
      request('POST', 'api/messages', {
        'message-type': 'message',
        from,
        to: mentions,
        topic,
        'content-type': 'text/plain',
        content,
      }),
  };
}

function names(data, field) {
  const list = data && Array.isArray(data.list) ? data.list : [];
  return list.map((item) => item && item[field]).filter((n) => typeof n === 'string');
}

function describe(status) {
  switch (status) {
    case 400:
      return 'the server refused the request';
    case 401:
      return 'your session has ended; please sign in again';
    case 403:
      return 'not allowed';
    case 404:
      return 'not found';
    case 409:
      return 'already exists';
    case 413:
      return 'too large';
    case 429:
      return 'too many requests; slow down a little';
    case 503:
      return 'the server is shutting down; try again shortly';
    default:
      return `server error (${status})`;
  }
}

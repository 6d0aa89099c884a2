// A sockhost extension written in JavaScript, built into a component of the
// `extension` world (wit/0.1.0) by ComponentizeJS: see sdk/js/README.md.
//
// - A rule blocks every request to `ads.example` (and its subdomains) before
//   any connection is made.
// - The request hook adds `x-sockhost-js: 1` to every request it sees, and
//   cancels requests whose path starts with `/private/`.
// - The response hook sets `x-content-type-options: nosniff` and removes
//   `x-origin-version` from every response it sees.
import { log } from 'sockhost:plugin/log@0.1.0';

const encoder = new TextEncoder();

// A header as the WIT `header` record: the value is bytes.
function header(name, value) {
  return { name, value: encoder.encode(value) };
}

const everything = { hostSuffixes: [], methods: [], resourceTypes: [] };

export const addOn = {
  init() {
    log('info', 'js-extension: loaded');
    return {
      rules: [
        {
          id: 1,
          priority: 1,
          condition: {
            hostSuffixes: ['ads.example'],
            excludedHostSuffixes: [],
            urlPattern: undefined,
            methods: [],
            resourceTypes: [],
          },
          action: { tag: 'block' },
        },
      ],
      // A filter that is set asks for the hook; empty lists match every
      // request (within the manifest's `hosts`). Leave a filter undefined
      // and its hook is never called.
      requestFilter: everything,
      responseFilter: everything,
    };
  },

  onRequest(request) {
    const path = new URL(request.url).pathname;
    if (path.startsWith('/private/')) {
      return { tag: 'cancel', val: `js-extension: ${path} is private` };
    }
    return { tag: 'proceed', val: [{ tag: 'set', val: header('x-sockhost-js', '1') }] };
  },

  onResponse(_response) {
    return [
      { tag: 'set', val: header('x-content-type-options', 'nosniff') },
      { tag: 'remove', val: 'x-origin-version' },
    ];
  },
};

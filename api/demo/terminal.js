// herald's demo web terminal: the SDK as a legacy page uses it (docs/sdk.md). Plain script, no build.
// The ticket stays in this page: read from the form, or once from the URL fragment (never sent to a
// server), which is then cleared from the address bar and history.
'use strict';

(function () {
  var form = document.getElementById('connect');
  var ticketInput = document.getElementById('ticket');
  var disconnectButton = document.getElementById('disconnect');
  var statusLine = document.getElementById('status');
  var notice = document.getElementById('notice');
  var list = document.getElementById('messages');
  var count = document.getElementById('count');
  var client = null;

  var fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get('ticket')) {
    ticketInput.value = fragment.get('ticket');
    history.replaceState(null, '', location.pathname + location.search);
    connect();
  }

  // Web Push (docs/platform-push.md): this browser becomes a WEB device of the ticket's user; its
  // service worker shows what herald pushes to it while the page is closed.
  var webPushButton = document.getElementById('webpush');
  var webPushStatus = document.getElementById('webpush-status');
  webPushButton.addEventListener('click', function () {
    webPushButton.disabled = true;
    webPushStatus.dataset.state = 'subscribing';
    webPushStatus.textContent = 'Subscribing…';
    message_client
      .subscribeWebPush({
        url: new URL('/graphql', location.href).href,
        ticket: ticketInput.value.trim(),
        serviceWorker: '/demo/webpush-sw.js',
      })
      .then(
        function (subscribed) {
          webPushStatus.dataset.state = 'subscribed';
          webPushStatus.dataset.device = subscribed.deviceId;
          webPushStatus.textContent = 'This browser gets messages while the page is closed';
        },
        function (error) {
          webPushButton.disabled = false;
          webPushStatus.dataset.state = 'failed';
          webPushStatus.dataset.code = error.code || '';
          webPushStatus.textContent = 'Not subscribed: ' + error.message;
        },
      );
  });

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    connect();
  });
  disconnectButton.addEventListener('click', function () {
    if (client) client.close();
  });

  function connect() {
    if (client) client.close();
    notice.hidden = true;
    client = message_client.open({
      url: new URL('/graphql', location.href).href,
      // Asked again after herald refuses the ticket (it expired): paste a fresh one into the form.
      ticket: function () {
        return ticketInput.value.trim();
      },
      onMessage: show,
    });
    var opened = client;
    showState('connecting');
    opened.on('state', function (state) {
      if (opened === client) showState(state);
    });
    opened.on('disconnected', function (info) {
      if (opened !== client) return;
      var why = info.code === 4403 ? 'the ticket was refused or expired — paste a fresh one' : info.reason;
      setStatus('disconnected', 'Reconnecting in ' + Math.ceil(info.retryInMs / 1000) + ' s (' + why + ')');
    });
    opened.on('recoveryimpossible', function () {
      notice.textContent =
        'More messages arrived while this page was away than can be replayed: reload the inbox to see them all.';
      notice.hidden = false;
    });
    opened.on('error', function (error) {
      console.warn('message_client:', error.message);
    });
  }

  function showState(state) {
    var text = {
      connecting: 'Connecting…',
      connected: 'Connected — messages appear as they arrive',
      disconnected: 'Disconnected',
      closed: 'Not connected',
    };
    setStatus(state, text[state] || state);
    disconnectButton.disabled = state === 'closed';
  }

  function setStatus(state, text) {
    statusLine.dataset.state = state;
    statusLine.textContent = text;
  }

  // Message text is shown as text (textContent), never parsed as HTML.
  function show(message, ctx) {
    var item = element('li', 'message');
    item.dataset.id = message.id;
    item.dataset.seq = message.meta.seq;
    item.appendChild(element('h3', 'title', message.title));
    item.appendChild(element('p', 'content', message.content));
    var keys = Object.keys(message.props);
    if (keys.length > 0) {
      var props = element('p', 'props');
      keys.forEach(function (key) {
        props.appendChild(element('span', 'prop', key + ': ' + message.props[key]));
      });
      item.appendChild(props);
    }
    item.appendChild(
      element(
        'p',
        'meta',
        'from ' +
          message.meta.sender +
          ' · ' +
          new Date(message.meta.stime).toLocaleString() +
          ' · seq ' +
          message.meta.seq +
          ' · ' +
          message.meta.realm,
      ),
    );
    var ack = element('button', 'ack', 'Acknowledge');
    ack.type = 'button';
    var problem = element('span', 'error');
    ack.addEventListener('click', function () {
      ack.disabled = true;
      problem.textContent = '';
      ctx.ack().then(
        function () {
          ack.textContent = 'Acknowledged ✓';
          item.classList.add('acknowledged');
        },
        function (error) {
          ack.disabled = false;
          problem.textContent = error.message;
        },
      );
    });
    item.appendChild(ack);
    item.appendChild(problem);
    list.insertBefore(item, list.firstChild);
    count.textContent = '(' + list.children.length + ')';
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
})();

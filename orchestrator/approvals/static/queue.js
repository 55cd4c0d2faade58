// The approval queue, live. Served by the inbox as written: no build step, nothing fetched
// from elsewhere. Without it the page still works: it reloads itself (a <noscript> refresh)
// and has a Refresh link. With it, the page listens to /inbox/queue/events and, when the
// queue changed, fetches itself again and swaps the listing in place, keeping the
// keyboard focus on the same link.
(function () {
  "use strict";
  var status = document.getElementById("queue-status");
  if (!status || !window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var fetching = false;
  var again = false;

  function focusedHref() {
    var active = document.activeElement;
    return active && active.getAttribute ? active.getAttribute("href") : null;
  }

  function swap(doc) {
    var main = document.querySelector("main");
    var fresh = doc.querySelector("main");
    if (!main || !fresh) {
      return;
    }
    var href = focusedHref();
    main.innerHTML = fresh.innerHTML;
    document.title = doc.title;
    if (href) {
      var links = main.querySelectorAll("a[href]");
      for (var i = 0; i < links.length; i++) {
        if (links[i].getAttribute("href") === href) {
          links[i].focus();
          break;
        }
      }
    }
    status = document.getElementById("queue-status");
    document.documentElement.setAttribute("data-queue-updates",
      String(Number(document.documentElement.getAttribute("data-queue-updates") || 0) + 1));
  }

  function refresh() {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    fetch(window.location.pathname + window.location.search, {
      credentials: "same-origin",
      redirect: "manual",
    })
      .then(function (answer) {
        if (answer.status !== 200) {
          throw new Error("queue page answered " + answer.status);
        }
        return answer.text();
      })
      .then(function (html) {
        swap(new DOMParser().parseFromString(html, "text/html"));
      })
      .catch(function () {
        // Signed out or offline: the page as it is stays; the Refresh link still works.
      })
      .then(function () {
        fetching = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  var url = "/inbox/queue/events?show=" + encodeURIComponent(status.getAttribute("data-show")) +
    "&version=" + encodeURIComponent(status.getAttribute("data-version"));
  var source = new EventSource(url);
  source.addEventListener("queue", refresh);
  source.addEventListener("end", function () {
    source.close();
  });
  document.documentElement.setAttribute("data-queue-live", "on");
})();

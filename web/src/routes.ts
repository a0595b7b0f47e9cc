import { useEffect, useState } from 'react';

/** `/messages/` (inbox) and `/messages/<user_id>/` (thread with that member), SelfCommunity's routes. */
export interface Route {
  userId: number | null;
}

export function parseRoute(pathname: string): Route {
  const match = /^\/messages\/(\d+)\/?$/.exec(pathname);
  return { userId: match ? Number(match[1]) : null };
}

export function navigate(path: string, replace = false): void {
  if (location.pathname === path) return;
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  window.dispatchEvent(new PopStateEvent('popstate'));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.pathname));
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.pathname));
    window.addEventListener('popstate', update);
    return () => window.removeEventListener('popstate', update);
  }, []);
  return route;
}

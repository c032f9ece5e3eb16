import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { QueryClientProvider } from '@tanstack/react-query';
import { App } from './App.tsx';
import { LocationProvider } from './router.tsx';
import { createQueryClient, TRPCProvider, trpcClient } from './trpc.ts';
import './styles.css';

const root = document.getElementById('root');
if (!root) throw new Error('no #root element');
const queryClient = createQueryClient();

createRoot(root).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <TRPCProvider trpcClient={trpcClient} queryClient={queryClient}>
        <LocationProvider>
          <App />
        </LocationProvider>
      </TRPCProvider>
    </QueryClientProvider>
  </StrictMode>,
);
